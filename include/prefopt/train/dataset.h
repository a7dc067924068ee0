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
#include <prefopt/data/keyphrases.h>
#include <prefopt/data/tokenizer.h>

namespace prefopt::train {

/// The shape of the examples of a Dataset, and of the JSONL file it is read from.
enum class DataFormat {
  Pairwise,     ///< "pairwise": {"prompt", "chosen", "rejected"} (data::read_pairs)
  Ranked,       ///< "ranked": {"prompt", "responses", "scores" | "ranks"} (data::read_lists)
  Unpaired,     ///< "unpaired": {"prompt", "completion", "label"} (data::read_unpaired, KTO)
  Completions,  ///< "completions": {"prompt", "completion"}, strings or conversations (SFT)
  Joint,        ///< "joint": {"chosen_prompt", "chosen", "rejected_prompt", "rejected"} (data::read_joint_pairs, DOVE)
};
std::string to_string(DataFormat format);
/// "pairwise", "ranked", "unpaired", "completions", "joint"; any other name is an error listing these.
DataFormat data_format_from_string(std::string_view name);

/// A (prompt, completion) pair of token ids for supervised fine-tuning; both non-empty (the data layer's).
using CompletionExample = data::CompletionExample;

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
  std::vector<data::JointPairExample> joint;
  /// SPO's graded variants of each pair's chosen response, [pairs][K] completions, degree k at index k (0: the
  /// response itself); empty unless add_degree_variants() made them.
  std::vector<std::vector<std::vector<int64_t>>> degree_variants;
  /// TPO's steps: [lists][K][completion tokens] the step index (0, 1, ...) of each token of each response;
  /// empty unless add_step_ids() made them.
  std::vector<std::vector<std::vector<int64_t>>> step_ids;
  /// The encoding's max_length (prompt + completion), 0 = none: sequences the trainer composes from these
  /// examples (KTO's mismatched pairs) are cut to it.
  int64_t max_length = 0;

  /// The number of examples of `format`.
  int64_t size() const;
  /// A 63-bit FNV-1a hash of the format and every token id: what ties a checkpoint or a reference cache to the
  /// data it was made from.
  int64_t fingerprint() const;

  static Dataset from_pairs(std::vector<data::PairExample> examples);
  static Dataset from_lists(std::vector<data::ListExample> examples);
  static Dataset from_unpaired(std::vector<data::UnpairedExample> examples);
  static Dataset from_completions(std::vector<CompletionExample> examples);
  static Dataset from_joint(std::vector<data::JointPairExample> examples);

  /// Reads and encodes a JSONL file of `format` (the data layer's readers; errors name file:line:field).
  /// A "completions" file holds {"prompt": ..., "completion": ...} lines in the text or conversational form
  /// of read_unpaired, without "label". An empty result is an error.
  static Dataset read(const std::string& path, DataFormat format, const data::Tokenizer& tokenizer,
                      const data::EncodeOptions& encode = {});
};

/// SPO's augmentation: for every pair of `data` (pairwise), the chosen response decoded with `tokenizer`, cut into
/// `num_degrees` graded variants by data::graded_removal (degree d removes the top share d / (K - 1) of its key
/// phrases), and each variant encoded again (with the tokenizer's EOS when the response ended with it), into
/// data.degree_variants. A variant that encodes to nothing is an error naming the pair and the degree.
///
/// Example:
/// ```
/// prefopt::train::add_degree_variants(train, tokenizer, /*num_degrees=*/4);
/// train.degree_variants[0].size();   // 4
/// ```
void add_degree_variants(Dataset& data, const data::Tokenizer& tokenizer, int64_t num_degrees,
                         const data::KeyphraseOptions& keyphrases = {});

/// TPO's steps: every response of `data` (ranked lists) decoded with `tokenizer`, cut after each occurrence of
/// `delimiter` into steps (the delimiter stays with the step it ends; empty pieces are dropped), each step encoded
/// on its own, and the response's ids replaced by the steps' ids in order (then the tokenizer's EOS when the
/// response ended with it, in the last step), with each token's step index in data.step_ids. With the byte
/// tokenizer the ids are unchanged. A response of no step (it decodes to nothing) is an error naming it.
///
/// Example:
/// ```
/// prefopt::train::add_step_ids(lists, tokenizer, "\n");
/// lists.step_ids[0][1];   // the step of each token of list 0's response 1
/// ```
void add_step_ids(Dataset& data, const data::Tokenizer& tokenizer, const std::string& delimiter);

}  // namespace prefopt::train
