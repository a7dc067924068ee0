// Encoding and collation: records (records.h) become token-id examples under a documented truncation rule,
// and examples become padded batches for one forward pass: input_ids, attention_mask, and labels already
// shifted for prefopt::sequence_logps, with chosen and rejected (or a list's K responses) stacked in one batch.
// Never runs a model, never moves data to a device (batches are CPU int64/bool/float64 tensors), and never pads
// on the left.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "records.h"
#include "tokenizer.h"

namespace prefopt::data {

/// Which end of an over-long prompt is kept (TRL's truncation_mode names).
enum class TruncationMode {
  KeepEnd,    ///< "keep_end": keep the last max_prompt_length tokens (the default; the question stays)
  KeepStart,  ///< "keep_start": keep the first max_prompt_length tokens
};
inline constexpr TruncationMode kKeepEnd = TruncationMode::KeepEnd;
inline constexpr TruncationMode kKeepStart = TruncationMode::KeepStart;

/// Options of encode and encode_all: how segments become ids, and the truncation rule.
///
/// Ids: a text prompt is `[bos] + tokenizer.encode(text)` (BOS when add_bos and the tokenizer has one), a text
/// completion `tokenizer.encode(text) + [eos]` (EOS when add_eos and the tokenizer has one); a conversation is
/// first rendered with render_prompt / render_completion (records.h); *_ids segments are taken as given.
/// Prompt and completion are encoded separately, as TRL does.
///
/// Truncation rule, applied in this order to each (prompt, completion) of an example (0 = no limit):
/// 1. prompt: if longer than max_prompt_length, keep its last max_prompt_length tokens (kKeepEnd) or its first
///    (kKeepStart). With kKeepEnd a long prompt loses its BOS.
/// 2. completion: if longer than max_completion_length, keep its first max_completion_length tokens (its EOS
///    is then cut off, as in TRL).
/// 3. if prompt + completion is longer than max_length, the completion keeps its first max_length - prompt
///    tokens. A prompt of max_length tokens or more leaves no room and is an "over-long prompt" error (or a
///    skip); setting max_prompt_length below max_length makes it a truncation instead.
/// A pair's or list's shared prompt is truncated once; a DOVE pair's two prompts each on its own.
struct EncodeOptions {
  /// TRL's DPOConfig defaults: 512, none, 1024.
  TORCH_ARG(int64_t, max_prompt_length) = 512;
  TORCH_ARG(int64_t, max_completion_length) = 0;
  TORCH_ARG(int64_t, max_length) = 1024;
  TORCH_ARG(TruncationMode, truncation_mode) = kKeepEnd;
  /// Put the tokenizer's BOS before text prompts (ignored when it has none).
  TORCH_ARG(bool, add_bos) = true;
  /// Put the tokenizer's EOS after text completions, and after conversational ones rendered by prefopt's built-in
  /// template (ignored when it has none; a model's own chat template ends the turn itself, as in TRL).
  TORCH_ARG(bool, add_eos) = true;
  /// Ids must be below this (the model's vocabulary size); 0: the tokenizer's vocab_size(). A model's
  /// vocabulary is often larger than its tokenizer's (padded embeddings), and pre-tokenized data may use it.
  TORCH_ARG(int64_t, vocab_size) = 0;
  /// encode_all only: kSkip leaves out (and counts) records that fail, kRaise raises.
  TORCH_ARG(OnError, on_error) = kRaise;
  /// encode_all with kSkip: how many messages SkipReport keeps.
  TORCH_ARG(int64_t, max_skip_messages) = 16;
};

/// A pair as token ids, truncated. prompt non-empty, chosen and rejected non-empty.
struct PairExample {
  std::vector<int64_t> prompt, chosen, rejected;
  /// The record's "margin" and "magnitude", when given (reward-model training).
  std::optional<double> margin, magnitude;
};
/// A DOVE pair as token ids, truncated.
struct JointPairExample {
  std::vector<int64_t> chosen_prompt, chosen, rejected_prompt, rejected;
};
/// A ranked list as token ids, truncated; labels as in the record.
struct ListExample {
  std::vector<int64_t> prompt;
  std::vector<std::vector<int64_t>> responses;
  std::vector<double> labels;
  ListLabelKind label_kind = ListLabelKind::Scores;
};
/// A supervised-fine-tuning example as token ids, truncated; both non-empty.
struct CompletionExample {
  std::vector<int64_t> prompt, completion;
};
/// A KTO example as token ids, truncated.
struct UnpairedExample {
  std::vector<int64_t> prompt, completion;
  bool label = false;
};

/// Encodes and truncates one record. Errors name the record's source and field:
///     pairs.jsonl:4: field "prompt": over-long prompt: 1100 tokens leave no room for a completion within
///     max_length 1024 (set max_prompt_length below max_length to truncate it)
///     pairs.jsonl:5: field "chosen_ids": token id 300 at index 2 is outside the tokenizer's vocabulary [0, 259)
///     pairs.jsonl:6: field "prompt": the prompt encodes to no token, so nothing predicts the first completion
///     token (give a prompt or use a tokenizer with a BOS token)
/// and an empty completion (a tokenizer that encodes the text to nothing and adds no EOS) is an error.
///
/// Example:
/// ```
/// prefopt::data::ByteTokenizer tok;
/// auto ex = prefopt::data::encode(record, tok, prefopt::data::EncodeOptions().max_length(256));
/// ex.prompt;   // {257, bytes of the prompt...}; ex.chosen: {bytes of the chosen response..., 258}
/// ```
PairExample encode(const PairRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options = {});
JointPairExample encode(const JointPairRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options = {});
ListExample encode(const ListRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options = {});
UnpairedExample encode(const UnpairedRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options = {});
CompletionExample encode(const CompletionRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options = {});

/// encode over many records, in order. With options.on_error(kSkip) the records that fail are left out and
/// counted. An empty `records`, or one whose every record was skipped, is an error.
///
/// Example:
/// ```
/// auto examples = prefopt::data::encode_all(prefopt::data::read_pairs("train.jsonl").items, tok,
///                                           prefopt::data::EncodeOptions().on_error(prefopt::data::kSkip));
/// examples.skipped.count;   // over-long prompts left out
/// ```
DataResult<PairExample> encode_all(const std::vector<PairRecord>& records, const Tokenizer& tokenizer,
                                   const EncodeOptions& options = {});
DataResult<JointPairExample> encode_all(const std::vector<JointPairRecord>& records, const Tokenizer& tokenizer,
                                        const EncodeOptions& options = {});
DataResult<ListExample> encode_all(const std::vector<ListRecord>& records, const Tokenizer& tokenizer,
                                   const EncodeOptions& options = {});
DataResult<CompletionExample> encode_all(const std::vector<CompletionRecord>& records, const Tokenizer& tokenizer,
                                         const EncodeOptions& options = {});
DataResult<UnpairedExample> encode_all(const std::vector<UnpairedRecord>& records, const Tokenizer& tokenizer,
                                       const EncodeOptions& options = {});

/// Options of the collators.
struct CollateOptions {
  /// The id written at padding positions (masked out, so any valid embedding row; pass tokenizer.pad_id()).
  TORCH_ARG(int64_t, pad_token_id) = 0;
  /// The label of every position that is not scored (prompt, padding, the last real token).
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// T is rounded up to a multiple of this (>= 1), e.g. 8 for tensor cores.
  TORCH_ARG(int64_t, pad_to_multiple_of) = 1;
  /// collate_lists only: K, the list size of the batch; 0 = the longest list in the batch.
  TORCH_ARG(int64_t, list_size) = 0;
};

/// Rows of (prompt, completion) sequences, right-padded. N rows, T = max(prompt + completion length) rounded
/// up to pad_to_multiple_of. Row r holds its prompt's P tokens, then its completion's C tokens, then padding:
///
/// - input_ids: [N, T] int64; pad_token_id after the P + C real tokens.
/// - attention_mask: [N, T] int64, 1 on the P + C real tokens, 0 on padding.
/// - labels: [N, T] int64, shifted for a causal LM and prefopt::sequence_logps:
///   labels[r, t] = input_ids[r, t + 1] for P - 1 <= t < P + C - 1 (the completion's tokens, each at the
///   position that predicts it), ignore_index everywhere else (prompt, padding, the last column). So
///   `prefopt::sequence_logps(logits, labels).logps` with the model's [N, T, V] logits is log p(completion | prompt).
/// - prompt_lengths: [N] int64, P; completion_lengths: [N] int64, C (the number of scored labels).
struct SequenceBatch {
  torch::Tensor input_ids;
  torch::Tensor attention_mask;
  torch::Tensor labels;
  torch::Tensor prompt_lengths;
  torch::Tensor completion_lengths;
};

/// B pairs in one batch of N = 2B rows: rows [0, B) are the chosen sequences, rows [B, 2B) the rejected, each
/// after its pair's prompt (TRL's concatenated_forward order). Split the scores with logps.chunk(2).
/// margins, magnitudes: [B] float64 when every pair of the batch has one (undefined when none has; a batch that
/// mixes pairs with and without is an error).
struct PairBatch : SequenceBatch {
  int64_t num_pairs = 0;
  torch::Tensor margins, magnitudes;
};

/// B DOVE pairs: rows [0, B) are (chosen_prompt, chosen), rows [B, 2B) (rejected_prompt, rejected).
/// `labels` score the responses only, as in SequenceBatch; `joint_labels` [2B, T] int64 also score the prompt
/// tokens, all but the first (prefopt::joint_labels' rule, shifted to [2B, T] with the last column ignored):
/// joint_labels[r, t] = input_ids[r, t + 1] for 0 <= t < P + C - 1.
struct JointPairBatch : SequenceBatch {
  torch::Tensor joint_labels;
  int64_t num_pairs = 0;
};

/// B lists of K slots in N = B * K rows: row b * K + k is list b's response k after list b's prompt.
/// A list shorter than K fills its missing slots with its prompt alone (attention on the prompt, no scored
/// label, completion length 0), so a model sees no empty row; those slots are masked.
/// - list_labels: [B, K] float64, the labels as read (0 in missing slots); label_kind says scores or ranks.
/// - list_mask: [B, K] bool, true for a real response.
/// sequence_logps(logits, labels).logps.view({B, K}) are the list's scores for the listwise losses, and
/// completion_lengths.view({B, K}) their lengths.
struct ListBatch : SequenceBatch {
  torch::Tensor list_labels;
  torch::Tensor list_mask;
  ListLabelKind label_kind = ListLabelKind::Scores;
  int64_t num_lists = 0;
  int64_t list_size = 0;
};

/// B KTO examples in B rows, plus desirable: [B] bool (the records' labels).
struct UnpairedBatch : SequenceBatch {
  torch::Tensor desirable;
};

/// The generic collator (also an SFT batch): row r is prompts[r] + completions[r]. Each prompt and each
/// completion must be non-empty and every id >= 0; rows must be >= 1.
///
/// Example:
/// ```
/// auto batch = prefopt::data::collate_sequences({{257, 50}}, {{52, 258}});
/// batch.input_ids;  // [[257, 50, 52, 258]]
/// batch.labels;     // [[-100, 52, 258, -100]]: position 1 predicts 52, position 2 predicts 258
/// ```
SequenceBatch collate_sequences(const std::vector<std::vector<int64_t>>& prompts,
                                const std::vector<std::vector<int64_t>>& completions,
                                const CollateOptions& options = {});

/// Example:
/// ```
/// auto batch = prefopt::data::collate_pairs(examples, prefopt::data::CollateOptions().pad_token_id(tok.pad_id()));
/// auto logits = model(batch.input_ids, batch.attention_mask);                     // [2B, T, V]
/// auto logps = prefopt::sequence_logps(logits, batch.labels).logps.chunk(2);      // chosen [B], rejected [B]
/// ```
PairBatch collate_pairs(const std::vector<PairExample>& examples, const CollateOptions& options = {});

/// Example:
/// ```
/// auto batch = prefopt::data::collate_joint_pairs(examples);
/// auto joint = prefopt::sequence_logps(logits, batch.joint_labels).logps.chunk(2);  // log pi(x) + log pi(y|x)
/// ```
JointPairBatch collate_joint_pairs(const std::vector<JointPairExample>& examples, const CollateOptions& options = {});

/// All lists of a batch must have the same label_kind; a list longer than options.list_size is an error.
///
/// Example:
/// ```
/// auto batch = prefopt::data::collate_lists(lists);
/// auto scores = prefopt::sequence_logps(logits, batch.labels).logps.view({batch.num_lists, batch.list_size});
/// ```
ListBatch collate_lists(const std::vector<ListExample>& examples, const CollateOptions& options = {});

/// Example:
/// ```
/// auto batch = prefopt::data::collate_unpaired(examples);
/// auto kl = prefopt::data::collate_unpaired(prefopt::data::kto_kl_examples(examples, 1024));
/// ```
UnpairedBatch collate_unpaired(const std::vector<UnpairedExample>& examples, const CollateOptions& options = {});

/// TRL's mismatched pairs for KTO's KL baseline: example i keeps its prompt and label and takes the completion
/// of example (i - 1) mod B (TRL's rotation by one), cut to its first max_length - prompt tokens when
/// max_length > 0. Needs B >= 2.
///
/// Example:
/// ```
/// auto kl_batch = prefopt::data::collate_unpaired(prefopt::data::kto_kl_examples(batch_examples, 1024));
/// ```
std::vector<UnpairedExample> kto_kl_examples(const std::vector<UnpairedExample>& examples, int64_t max_length = 0);

}  // namespace prefopt::data
