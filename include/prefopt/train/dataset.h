// Training data for the Trainer: a set of encoded examples of one format (pairs, ranked lists, unpaired KTO
// examples, or plain completions for SFT), read from a JSONL file or built in code. Holds token ids only: never
// runs a model, never collates (the Trainer collates each micro-batch) and never shuffles (the Trainer does, from
// its seed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <prefopt/data/collate.h>
#include <prefopt/data/tokenizer.h>

namespace prefopt::train {

/// The shape of the examples of a Dataset, and of the JSONL file it is read from.
enum class DataFormat {
  Pairwise,     ///< "pairwise": {"prompt", "chosen", "rejected"} (data::read_pairs)
  Ranked,       ///< "ranked": {"prompt", "responses", "scores" | "ranks"} (data::read_lists)
  Unpaired,     ///< "unpaired": {"prompt", "completion", "label"} (data::read_unpaired, KTO)
  Completions,  ///< "completions": {"prompt", "completion"}, strings or conversations (SFT)
};
std::string to_string(DataFormat format);
/// "pairwise", "ranked", "unpaired", "completions"; any other name is an error listing these.
DataFormat data_format_from_string(std::string_view name);

/// A (prompt, completion) pair of token ids for supervised fine-tuning; both non-empty.
struct CompletionExample {
  std::vector<int64_t> prompt, completion;
};

/// Encoded examples of one format. Only the vector that `format` names is used; the others stay empty.
/// An example's index in that vector is its identity (the key of precomputed reference log-probs and of the
/// data position in a checkpoint), so a dataset must not change between a run and its resumption.
///
/// Example:
/// ```
/// prefopt::data::ByteTokenizer tok;
/// auto train = prefopt::train::Dataset::read("train.jsonl", prefopt::train::DataFormat::Pairwise, tok);
/// auto sft = prefopt::train::Dataset::from_completions({{{257, 104}, {105, 258}}});
/// train.size();   // number of pairs
/// ```
struct Dataset {
  DataFormat format = DataFormat::Pairwise;
  std::vector<data::PairExample> pairs;
  std::vector<data::ListExample> lists;
  std::vector<data::UnpairedExample> unpaired;
  std::vector<CompletionExample> completions;

  /// The number of examples of `format`.
  int64_t size() const;

  static Dataset from_pairs(std::vector<data::PairExample> examples);
  static Dataset from_lists(std::vector<data::ListExample> examples);
  static Dataset from_unpaired(std::vector<data::UnpairedExample> examples);
  static Dataset from_completions(std::vector<CompletionExample> examples);

  /// Reads and encodes a JSONL file of `format` (the data layer's readers; errors name file:line:field).
  /// A "completions" file holds {"prompt": ..., "completion": ...} lines in the text or conversational form
  /// of read_unpaired, without "label". An empty result is an error.
  static Dataset read(const std::string& path, DataFormat format, const data::Tokenizer& tokenizer,
                      const data::EncodeOptions& encode = {});
};

}  // namespace prefopt::train
