// Packing: a collated batch's sequences (collate.h: chosen and rejected, every response of a ranked list, the
// unpaired completions, DOVE's joint pairs) laid end to end in one row with per-sequence boundaries (cu_seqlens)
// and positions restarting at each sequence, so a model computes no padding; and the token-budget batching that
// groups examples by how many tokens they bring rather than how many they are. Never runs a model and never moves
// data to a device (CPU int64 tensors).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "collate.h"

namespace prefopt::data {

/// N sequences in one row of S = sum of their lengths, from a right-padded batch of N rows of T columns:
/// sequence i is row i's first L_i tokens (L_i = its attention_mask's count of 1s), and occupies the packed
/// positions [cu_seqlens[i], cu_seqlens[i + 1]).
/// - input_ids: [1, S] int64; position_ids: [1, S] int64, 0..L_i-1 within each sequence (the rotary positions).
/// - labels: [1, S] int64, the batch's labels at the same tokens (already shifted within each sequence, so a
///   sequence's last token, which predicts nothing, is ignore_index and no label crosses a boundary).
/// - cu_seqlens: [N + 1] int64, 0, L_0, L_0 + L_1, ..., S.
/// - padded_index: [S] int64, row * T + column of each packed token in the padded batch (pack_like / unpack).
struct PackedBatch {
  torch::Tensor input_ids, position_ids, labels, cu_seqlens, padded_index;
  int64_t num_sequences = 0;
  /// T of the padded batch it was packed from, and the longest L_i.
  int64_t padded_length = 0, max_length = 0;
  int64_t num_tokens() const { return input_ids.defined() ? input_ids.size(1) : 0; }
};

/// Packs a collated batch (any of collate.h's batches). Its attention_mask must be right padding (ones then
/// zeros in every row), as every collator of collate.h writes; other masks are an error naming the row.
///
/// Example:
/// ```
/// auto batch = prefopt::data::collate_pairs(examples);                       // [2B, T], padded
/// auto packed = prefopt::data::pack(batch);                                  // [1, S], S = real tokens only
/// auto hidden = model->hidden_states_packed(packed.input_ids, packed.position_ids, packed.cu_seqlens);
/// auto logps = prefopt::packed_fused_linear_logps(hidden[0], model->lm_head_weight(), packed.labels[0],
///                                                 packed.cu_seqlens).logps;  // [2B], as from the padded batch
/// ```
PackedBatch pack(const SequenceBatch& batch);

/// Another per-token tensor of the padded batch ([N, T, ...], e.g. DOVE's joint_labels) at the packed tokens:
/// [S, ...]. Differentiable (a gather).
///
/// Example:
/// ```
/// auto joint_labels = prefopt::data::pack_like(packed, batch.joint_labels);  // [S]
/// ```
torch::Tensor pack_like(const PackedBatch& packed, const torch::Tensor& padded);

/// The inverse: per-token values of the packed row ([S, ...] or [1, S, ...]) scattered into the padded batch's
/// layout [N, T, ...], `fill` at the padding positions. Differentiable with respect to values.
///
/// Example:
/// ```
/// auto token_logps = prefopt::data::unpack(packed, out.token_logps);         // [N, T], 0 on padding
/// ```
torch::Tensor unpack(const PackedBatch& packed, const torch::Tensor& values, double fill = 0.0);

/// Token-budget batching: consecutive batches of `tokens` (the token count each example brings, in the order it is
/// taken) holding at most max_tokens tokens each; an example larger than the budget is a batch of its own.
/// Returns [begin, end) index ranges covering every example once. max_tokens must be >= 1.
///
/// Example:
/// ```
/// auto batches = prefopt::data::token_budget_batches({300, 500, 900, 100}, 1024);  // {0, 2}, {2, 4}
/// ```
std::vector<std::pair<int64_t, int64_t>> token_budget_batches(const std::vector<int64_t>& tokens, int64_t max_tokens);

/// The tokens an example brings to a packed batch: every sequence collate.h makes of it (a pair: prompt + chosen
/// and prompt + rejected; a list: prompt + each response; DOVE: both prompt + response sequences).
int64_t packed_token_count(const PairExample& example);
int64_t packed_token_count(const ListExample& example);
int64_t packed_token_count(const JointPairExample& example);
int64_t packed_token_count(const UnpairedExample& example);
int64_t packed_token_count(const CompletionExample& example);

}  // namespace prefopt::data
