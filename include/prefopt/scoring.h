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

}  // namespace prefopt
