// Scoring of packed sequences: the per-sequence log-probs, KLs, entropies and WPO weights of N sequences laid end
// to end in one row of S tokens (prefopt/data/packing.h), from the fused per-token operators of scoring.h and a
// segment reduction by cu_seqlens, so a loss gets the very per-sequence scores a padded batch gives it without a
// pad token being computed. Reads logits or hidden states and labels only; never runs a model.
#pragma once

#include <torch/types.h>

#include <prefopt/scoring.h>

namespace prefopt {

/// Per-sequence sums of per-token values: out[i] = sum of values[cu_seqlens[i] .. cu_seqlens[i + 1]).
///
/// - values: [S] float32, bfloat16, float16 or float64; cu_seqlens: [N + 1] int64 or int32 on the same device,
///   0 = cu_seqlens[0] <= ... <= cu_seqlens[N] = S (a repeated offset is an empty sequence, summing to 0).
/// - returns: [N] in float32 (float64 for float64 values); differentiable with respect to values.
///
/// Example:
/// ```
/// auto cu = torch::tensor({0, 3, 3, 5}, torch::kLong);          // 3 sequences: 3 tokens, none, 2 tokens
/// auto sums = prefopt::segment_sum(torch::ones({5}), cu);       // [3, 0, 2]
/// ```
torch::Tensor segment_sum(const torch::Tensor& values, const torch::Tensor& cu_seqlens);

/// The number of scored labels (!= ignore_index) of each sequence: [N] int64.
///
/// Example:
/// ```
/// auto counts = prefopt::segment_counts(packed.labels.view({-1}), packed.cu_seqlens);
/// ```
torch::Tensor segment_counts(const torch::Tensor& labels, const torch::Tensor& cu_seqlens, int64_t ignore_index = -100);

/// sequence_logps of packed sequences: logits [S, V] of the packed row (any dtype token_logps takes), labels [S]
/// int64 already shifted within each sequence (packing.h's labels), cu_seqlens [N + 1].
/// Returns SequenceLogps{logps [N], token_logps [S]} in float32 (float64 for float64 logits): the sums (or means
/// with options.average()) of each sequence's scored tokens, 0 for a sequence with none. Differentiable.
///
/// Example:
/// ```
/// auto logits = model->forward_packed(packed.input_ids, packed.position_ids, packed.cu_seqlens);  // [1, S, V]
/// auto out = prefopt::packed_sequence_logps(logits[0], packed.labels[0], packed.cu_seqlens);
/// out.logps;   // [N], equal to sequence_logps(padded logits, padded labels).logps
/// ```
SequenceLogps packed_sequence_logps(const torch::Tensor& logits, const torch::Tensor& labels,
                                    const torch::Tensor& cu_seqlens, const SequenceLogpsOptions& options = {});

/// fused_linear_logps of packed sequences, reduced per sequence: hidden [S, H], weight [V, H], labels [S], cu_seqlens
/// [N + 1]. No [S, V] logits exist (see fused_linear_logps). Returns SequenceLogps{logps [N] (sums), token_logps
/// [S]}, differentiable with respect to hidden and weight.
///
/// Example:
/// ```
/// auto hidden = model->hidden_states_packed(packed.input_ids, packed.position_ids, packed.cu_seqlens)[0];
/// auto out = prefopt::packed_fused_linear_logps(hidden, model->lm_head_weight(), packed.labels[0], packed.cu_seqlens);
/// ```
SequenceLogps packed_fused_linear_logps(const torch::Tensor& hidden, const torch::Tensor& weight,
                                        const torch::Tensor& labels, const torch::Tensor& cu_seqlens,
                                        const FusedLinearLogpsOptions& options = {});

/// TDPO's sequence KL of packed sequences: per sequence, the sum of token_kl over its scored positions.
/// policy_logits, ref_logits: [S, V]; labels [S]; returns [N], differentiable w.r.t. policy_logits only.
///
/// Example:
/// ```
/// auto kl = prefopt::packed_sequence_kl(policy_logits[0], ref_logits[0], packed.labels[0], packed.cu_seqlens);
/// ```
torch::Tensor packed_sequence_kl(const torch::Tensor& policy_logits, const torch::Tensor& ref_logits,
                                 const torch::Tensor& labels, const torch::Tensor& cu_seqlens,
                                 int64_t ignore_index = -100, double temperature = 1.0);

/// WPO's sequence log-weights of packed sequences: per sequence, the mean of wpo_log_weights over its scored
/// tokens (0 for a sequence with none). logits [S, V], labels [S]; returns [N], detached.
///
/// Example:
/// ```
/// auto lw = prefopt::packed_wpo_sequence_log_weights(logits[0], packed.labels[0], packed.cu_seqlens);
/// ```
torch::Tensor packed_wpo_sequence_log_weights(const torch::Tensor& logits, const torch::Tensor& labels,
                                              const torch::Tensor& cu_seqlens, int64_t ignore_index = -100,
                                              double temperature = 1.0);

/// The summed entropy of each packed sequence's scored positions (a metric; divide by segment_counts for the
/// mean). logits [S, V], labels [S]; returns [N], detached.
///
/// Example:
/// ```
/// auto h = prefopt::packed_sequence_entropy(logits[0], packed.labels[0], packed.cu_seqlens);
/// ```
torch::Tensor packed_sequence_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                      const torch::Tensor& cu_seqlens, int64_t ignore_index = -100,
                                      double temperature = 1.0);

}  // namespace prefopt
