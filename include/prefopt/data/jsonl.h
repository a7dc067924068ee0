// JSONL readers for preference and SFT data: TRL's pairwise, ranked-list, DOVE joint-pair, KTO unpaired and
// prompt-completion formats, in plain text, conversational or pre-tokenized form. Files are read one line at a
// time and each line is parsed and validated into a record; a malformed line raises an error naming the file, the
// 1-based line and the field (or, when asked, is skipped and counted). Never tokenizes, never holds more than one
// line's JSON, and never changes the bytes of a string (UTF-8 is kept as is).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <torch/arg.h>

#include "records.h"

namespace prefopt::data {

/// Options of the readers.
struct ReadOptions {
  /// kRaise: the first malformed line raises an error. kSkip: malformed lines are left out and counted.
  TORCH_ARG(OnError, on_error) = kRaise;
  /// With kSkip, how many of the skipped lines' messages SkipReport::messages keeps (>= 0).
  TORCH_ARG(int64_t, max_skip_messages) = 16;
};

/// What a streaming read saw.
struct ReadStats {
  /// Records passed to the sink.
  int64_t records = 0;
  SkipReport skipped;
};

// File format (every reader):
//
// - One JSON object per line (JSON Lines). Lines that are empty or hold only spaces, tabs or a '\r' are
//   ignored and not counted; a UTF-8 byte-order mark at the start of the file and a '\r' before each '\n'
//   are dropped. Fields other than the ones below are ignored (TRL datasets carry ids, scores, metadata).
// - A text field ("prompt", "chosen", ...) is a JSON string (plain text) or a list of messages
//   [{"role": "...", "content": "..."}, ...] (conversational; see render_prompt / render_completion in
//   records.h). A record's prompts and its text completions are either all plain or all conversational.
//   A conversational completion must start with an "assistant" message.
// - Pre-tokenized: instead of the text field F, "F_ids" (or TRL's "F_input_ids") holds a list of
//   non-negative integer token ids, used as given: the encoder adds no BOS or EOS to them. Any field may be
//   given either way, independently; giving both F and F_ids is an error.
// - Completions must not be empty: "", [] or an empty id list is an error ("empty completion"). An assistant
//   message with empty content is a completion (the chat template still renders its turn, as in TRL). A prompt may be empty (the encoder's BOS then precedes the
//   completion), except an empty prompt id list, which leaves the first completion token unpredicted.
// - An empty file (no record) is an error in both modes, as is a file whose every line was skipped.
//
// Error messages have the form
//     pairs.jsonl:7: field "chosen": expected a string or a list of messages, got number
//     pairs.jsonl:9: field "chosen[1].role": missing
//     pairs.jsonl:12: invalid JSON at byte 44: syntax error while parsing value - unexpected end of input; ...
//     pairs.jsonl: no records: the file is empty
// with the file name as the caller gave it, nested fields written as in the examples, and for invalid JSON the
// 1-based byte of the line where the parser stopped (nlohmann_json's position; invalid UTF-8 is invalid JSON).

/// Pairwise preferences, TRL's preference format:
///     {"prompt": "2+2=", "chosen": "4", "rejected": "5"}
///     {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],
///      "rejected": [{"role": "assistant", "content": "5"}]}
///     {"prompt_ids": [50, 43], "chosen_ids": [52], "rejected_ids": [53]}
///
/// Returns the records in file order and the report of the skipped lines.
///
/// Example:
/// ```
/// auto pairs = prefopt::data::read_pairs("train.jsonl");                                   // raises on a bad line
/// auto lenient = prefopt::data::read_pairs("train.jsonl", ReadOptions().on_error(kSkip));
/// std::cout << lenient.items.size() << " pairs, " << lenient.skipped.count << " lines skipped\n";
/// ```
DataResult<PairRecord> read_pairs(const std::string& path, const ReadOptions& options = {});
/// Streaming form: calls `sink` once per record, in file order, without collecting them.
ReadStats read_pairs(const std::string& path, const std::function<void(PairRecord&&)>& sink,
                     const ReadOptions& options = {});

/// DOVE's joint pairs, each response with its own prompt:
///     {"chosen_prompt": "...", "chosen": "...", "rejected_prompt": "...", "rejected": "..."}
/// (or the _ids forms: "chosen_prompt_ids", "chosen_ids", "rejected_prompt_ids", "rejected_ids").
///
/// Example:
/// ```
/// auto joint = prefopt::data::read_joint_pairs("dove.jsonl").items;
/// ```
DataResult<JointPairRecord> read_joint_pairs(const std::string& path, const ReadOptions& options = {});
ReadStats read_joint_pairs(const std::string& path, const std::function<void(JointPairRecord&&)>& sink,
                           const ReadOptions& options = {});

/// Ranked lists:
///     {"prompt": "...", "responses": ["a", "b", "c"], "scores": [0.9, 0.1, 0.5]}   (higher is better)
///     {"prompt": "...", "responses": ["a", "b", "c"], "ranks": [1, 3, 2]}          (lower is better)
/// Exactly one of "scores" and "ranks", a list of finite numbers as long as "responses" (K >= 1). Each
/// response is a string or a conversation; "responses_ids" (or "responses_input_ids") is a list of id lists.
///
/// Example:
/// ```
/// auto lists = prefopt::data::read_lists("ranked.jsonl").items;
/// lists[0].labels;       // {0.9, 0.1, 0.5}, label_kind == ListLabelKind::Scores
/// ```
DataResult<ListRecord> read_lists(const std::string& path, const ReadOptions& options = {});
ReadStats read_lists(const std::string& path, const std::function<void(ListRecord&&)>& sink,
                     const ReadOptions& options = {});

/// KTO's unpaired examples:
///     {"prompt": "...", "completion": "...", "label": true}
/// "label" must be a JSON boolean (true = desirable). "completion_ids" / "completion_input_ids" pre-tokenized.
///
/// Example:
/// ```
/// auto examples = prefopt::data::read_unpaired("kto.jsonl").items;
/// ```
DataResult<UnpairedRecord> read_unpaired(const std::string& path, const ReadOptions& options = {});
ReadStats read_unpaired(const std::string& path, const std::function<void(UnpairedRecord&&)>& sink,
                        const ReadOptions& options = {});

/// Supervised fine-tuning's prompt-completion examples:
///     {"prompt": "...", "completion": "..."}
/// in the text, conversational or pre-tokenized ("prompt_ids", "completion_ids") forms of the other readers; and
/// TRL's language-modelling records, trained on every token after the first (CompletionRecord::language_modeling):
///     {"text": "..."}
///     {"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}, ...]}
/// A line holds one of the three forms ("prompt" with "completion", or "text", or "messages").
///
/// Example:
/// ```
/// auto examples = prefopt::data::read_completions("sft.jsonl").items;
/// ```
DataResult<CompletionRecord> read_completions(const std::string& path, const ReadOptions& options = {});
ReadStats read_completions(const std::string& path, const std::function<void(CompletionRecord&&)>& sink,
                           const ReadOptions& options = {});

}  // namespace prefopt::data
