// Scoring: turns a model's logits into per-token and per-sequence log-probs of given labels. This is the
// only layer that touches a vocabulary; it calls the fused operators in kernels/ and never materialises a
// log-softmax or an fp32 copy of the logits.
#pragma once

#include <torch/arg.h>
#include <torch/types.h>

namespace prefopt {

/// Options for sequence_logps.
struct SequenceLogpsOptions {
  /// Label value whose position is not scored (log-prob 0, no gradient), as in HF/TRL.
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// false: sum of the scored tokens' log-probs (DPO's p(y)); true: their mean (IPO, SimPO, ORPO).
  TORCH_ARG(bool, average) = false;
  /// Logits are divided by this before the softmax (> 0).
  TORCH_ARG(double, temperature) = 1.0;
  /// Let the backward write the gradient into the logits' own buffer instead of a new [B, T, V] tensor (see
  /// TokenLogpsOptions::inplace_backward for when it applies and what it costs the caller).
  TORCH_ARG(bool, inplace_backward) = false;
};

/// Result of sequence_logps.
struct SequenceLogps {
  /// [B], summed (or mean) log-probs of each sequence's scored tokens; 0 for a row with none scored.
  torch::Tensor logps;
  /// [B, T], log-prob of each label; 0 where the label is ignore_index.
  torch::Tensor token_logps;
};

/// Log-prob of each row's label under softmax(logits / temperature).
///
/// - logits: [N, V], float32, bfloat16, float16 or float64, on CPU or CUDA. Any strides; a vocabulary
///   dimension that is not contiguous is copied once.
/// - labels: [N], int64, on the device of logits; each in [0, V) or equal to ignore_index.
/// - returns: [N] in float32 (float64 for float64 logits), 0 where ignored. Differentiable with respect
///   to logits; the gradient is computed from a saved row log-sum-exp ([N] floats), never a softmax.
///
/// Out-of-range labels raise an error naming the row on CPU; on CUDA they trip a device-side assert.
/// A row whose logits are all -inf has no defined log-prob and gives NaN.
///
/// Example:
/// ```
/// auto logits = torch::randn({6, 32000});
/// auto labels = torch::randint(32000, {6}, torch::kLong);
/// torch::Tensor logps = prefopt::token_logps(logits, labels);  // [6], float32
/// ```
torch::Tensor token_logps(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index = -100,
                          double temperature = 1.0);

/// Per-token and per-sequence log-probs of labelled sequences.
///
/// - logits: [B, T, V], float32, bfloat16, float16 or float64; logits[b, t] must predict labels[b, t]:
///   labels are assumed already shifted by the caller (labels[b, t] = input_ids[b, t + 1] for a causal LM,
///   prompt and padding positions set to ignore_index).
/// - labels: [B, T], int64, same device.
/// - returns SequenceLogps{logps [B], token_logps [B, T]} in float32 (float64 for float64 logits).
///   Both are differentiable with respect to logits. With average, a row with no scored token gives 0.
///
/// Example:
/// ```
/// auto logits = model_output;                      // [2, 5, V]
/// auto labels = input_ids.slice(1, 1);             // shifted by the caller, prompt set to -100
/// auto out = prefopt::sequence_logps(logits, labels, prefopt::SequenceLogpsOptions().average(true));
/// out.logps;                                       // [2]
/// ```
SequenceLogps sequence_logps(const torch::Tensor& logits, const torch::Tensor& labels,
                             const SequenceLogpsOptions& options = {});

/// Options for the token_logps overload that takes them.
struct TokenLogpsOptions {
  /// Label value whose position is not scored (log-prob 0, no gradient).
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// Logits are divided by this before the softmax (> 0).
  TORCH_ARG(double, temperature) = 1.0;
  /// The backward writes d logps / d logits into the logits' buffer instead of allocating an [N, V] gradient,
  /// which halves the backward's memory. Taken only where it is safe for autograd: logits that are an
  /// intermediate result (not a leaf), with a contiguous vocabulary dimension and no overlapping elements;
  /// otherwise the ordinary backward runs. The caller promises that nothing else needs the logits' values
  /// after this op's backward (for example, no other loss term that saved them); autograd cannot detect it.
  TORCH_ARG(bool, inplace_backward) = false;
};

/// token_logps with options (see the overload above for shapes and dtypes), including the in-place backward.
///
/// Example:
/// ```
/// auto logits = model_head(hidden);                // [N, V], an intermediate tensor
/// auto logps = prefopt::token_logps(logits, labels, prefopt::TokenLogpsOptions().inplace_backward(true));
/// logps.sum().backward();                          // the gradient overwrites logits' buffer
/// ```
torch::Tensor token_logps(const torch::Tensor& logits, const torch::Tensor& labels, const TokenLogpsOptions& options);

/// Per-position KL(ref || policy) = sum_v p_ref(v) (log p_ref(v) - log p_pol(v)) of softmax(logits / T), TDPO's
/// per-token KL (LOSSES.md section 3), from one read of both rows: no probability tensor is formed.
///
/// - policy_logits, ref_logits: [N, V], the same dtype (float32, bfloat16, float16 or float64) and device.
/// - labels: [N] int64 or an undefined tensor (every row scored). Rows whose label equals ignore_index give 0
///   and are not read; other label values are not used.
/// - returns: [N] in float32 (float64 for float64 logits). Differentiable with respect to policy_logits only:
///   ref_logits is treated as detached (no gradient reaches it even if it requires one). The gradient is
///   g (p_pol - p_ref) / T, recomputed from two saved row LSEs ([N] floats each).
///
/// A reference row with no finite logit gives NaN; a policy row with -inf where the reference has mass, +inf.
///
/// Example:
/// ```
/// auto kl = prefopt::token_kl(policy_logits, ref_logits.detach(), labels);  // [N], float32
/// ```
torch::Tensor token_kl(const torch::Tensor& policy_logits, const torch::Tensor& ref_logits,
                       const torch::Tensor& labels = {}, int64_t ignore_index = -100, double temperature = 1.0);

/// TDPO's sequence KL K(y) = sum_t mask_t KL_t (a sum, not a mean) over the scored positions of each sequence.
///
/// - policy_logits, ref_logits: [B, T, V], same dtype and device; labels: [B, T] int64, already shifted
///   (ignore_index where a position is not scored).
/// - returns: [B] in float32 (float64 for float64 logits), differentiable w.r.t. policy_logits only.
///
/// Example:
/// ```
/// auto k_chosen = prefopt::sequence_kl(policy_logits, ref_logits, labels);  // [B]
/// ```
torch::Tensor sequence_kl(const torch::Tensor& policy_logits, const torch::Tensor& ref_logits,
                          const torch::Tensor& labels, int64_t ignore_index = -100, double temperature = 1.0);

/// Entropy -sum_v p(v) log p(v) of softmax(logits / T) per row, from one read of the row.
///
/// - logits: [N, V] float32, bfloat16, float16 or float64; labels: [N] int64 or undefined (rows labelled
///   ignore_index give 0 and are not read).
/// - returns: [N] in float32 (float64 for float64 logits). A metric: never requires grad (detached).
///
/// Example:
/// ```
/// auto h = prefopt::token_entropy(logits.view({-1, V}), labels.view({-1}));
/// auto mean_entropy = h.sum() / labels.ne(-100).sum();
/// ```
torch::Tensor token_entropy(const torch::Tensor& logits, const torch::Tensor& labels = {}, int64_t ignore_index = -100,
                            double temperature = 1.0);

/// WPO's per-token log-weight (LOSSES.md section 1): log w_t = log p(y_t) - log sum_v p(v)^2, with
/// log sum_v p(v)^2 = LSE(2z) - 2 LSE(z), z = logits / T; the label logit, LSE(z) and LSE(2z) come from one read.
///
/// - logits: [N, V] float32, bfloat16, float16 or float64; labels: [N] int64 in [0, V) or ignore_index.
/// - returns: [N] in float32 (float64 for float64 logits), 0 where ignored. Detached (never requires grad).
///
/// Example:
/// ```
/// auto log_w = prefopt::wpo_log_weights(logits, labels);  // [N], <= 0 where p(label) <= sum p^2
/// ```
torch::Tensor wpo_log_weights(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index = -100,
                              double temperature = 1.0);

/// WPO's sequence log-weight mean_t log w_t over the scored tokens of each sequence (0 for a sequence with
/// none), as TRL computes it; functional::wpo_pair_weights turns a chosen and a rejected one into the pair
/// weight min(1, exp(lw_c + lw_r)) that DPOLossInputs::weights takes.
///
/// - logits: [B, T, V]; labels: [B, T] int64, already shifted.
/// - returns: [B] in float32 (float64 for float64 logits). Detached.
///
/// Example:
/// ```
/// auto w = prefopt::functional::wpo_pair_weights(
///     prefopt::wpo_sequence_log_weights(chosen_logits, chosen_labels),
///     prefopt::wpo_sequence_log_weights(rejected_logits, rejected_labels));  // [B], for DPOLossInputs::weights
/// ```
torch::Tensor wpo_sequence_log_weights(const torch::Tensor& logits, const torch::Tensor& labels,
                                   int64_t ignore_index = -100, double temperature = 1.0);

/// Options for fused_linear_logps.
struct FusedLinearLogpsOptions {
  /// Label value whose position is not scored (log-prob 0, no gradient).
  TORCH_ARG(int64_t, ignore_index) = -100;
  /// Logits are divided by this before the softmax (> 0).
  TORCH_ARG(double, temperature) = 1.0;
  /// Memory budget (bytes) of the one chunk of logits that exists at a time, in the forward and the backward.
  TORCH_ARG(int64_t, chunk_bytes) = int64_t{128} << 20;
};

/// Log-prob of each row's label under softmax(hidden weight^T / T), the lm_head matmul done chunk by chunk so
/// that no [N, V] tensor ever exists: the forward takes as many rows as fit chunk_bytes, the backward as many
/// vocabulary entries, recomputing that chunk's logits.
///
/// - hidden: [N, H]; weight: [V, H] (an lm_head's weight, as torch::nn::Linear stores it); the same dtype
///   (float32, bfloat16, float16 or float64) and device. labels: [N] int64 in [0, V) or ignore_index.
/// - returns: [N] in float32 (float64 for float64 inputs), 0 where ignored. Differentiable with respect to
///   hidden and weight (each gradient computed only when required; bf16/fp16 grad_hidden accumulated in fp32).
///   Peak extra memory: one chunk (plus, on CPU for bf16/fp16, its fp32 copy) and the gradients themselves.
///
/// Out-of-range labels raise an error naming the row on CPU; on CUDA they trip a device-side assert.
///
/// Example:
/// ```
/// auto hidden = model.body(input_ids).view({-1, H});           // [N, H]
/// auto logps = prefopt::fused_linear_logps(hidden, lm_head->weight, labels.view({-1}),
///                                          prefopt::FusedLinearLogpsOptions().chunk_bytes(64 << 20));
/// logps.sum().backward();                                      // grads for hidden and lm_head->weight
/// ```
torch::Tensor fused_linear_logps(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& labels,
                                 const FusedLinearLogpsOptions& options = {});

}  // namespace prefopt
