// Per-token and per-sequence log-probs of labels, per-token KL, entropy and WPO weights, and the fused-linear
// log-probs, on top of the fused operators of kernels/. The masked sum runs
// over [B, T] log-probs; the [B, T, V] logits are only ever read by the kernel, in their own dtype.
#include <prefopt/scoring.h>

#include <ATen/ATen.h>

#include "../kernels/fused_linear_logps.h"
#include "../kernels/token_entropy.h"
#include "../kernels/token_kl.h"
#include "../kernels/token_logps.h"
#include "../kernels/wpo_token_stats.h"

namespace prefopt {

torch::Tensor token_logps(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index,
                          double temperature) {
  return std::get<0>(ops::token_logps(logits, labels, ignore_index, temperature));
}

SequenceLogps sequence_logps(const torch::Tensor& logits, const torch::Tensor& labels,
                             const SequenceLogpsOptions& options) {
  TORCH_CHECK(logits.dim() == 3, "logits must have shape [B, T, V], got ", logits.sizes());
  TORCH_CHECK(labels.dim() == 2 && labels.size(0) == logits.size(0) && labels.size(1) == logits.size(1),
              "labels must have shape [B, T] matching logits [", logits.size(0), ", ", logits.size(1), ", ",
              logits.size(2), "], got ", labels.sizes());
  const int64_t batch = logits.size(0);
  const int64_t steps = logits.size(1);
  const at::Tensor flat_logits = logits.reshape({batch * steps, logits.size(2)});
  const at::Tensor flat_labels = labels.reshape({batch * steps});
  const at::Tensor per_token =
      std::get<0>(ops::token_logps(flat_logits, flat_labels, options.ignore_index(), options.temperature(),
                                   options.inplace_backward()))
          .view({batch, steps});
  // Ignored positions are already exact zeros, so a plain sum is the masked sum.
  at::Tensor logps = per_token.sum(1);
  if (options.average()) {
    const at::Tensor counts = labels.ne(options.ignore_index()).sum(1).clamp_min(1).to(logps.scalar_type());
    logps = logps / counts;
  }
  return {logps, per_token};
}

torch::Tensor token_logps(const torch::Tensor& logits, const torch::Tensor& labels, const TokenLogpsOptions& options) {
  return std::get<0>(
      ops::token_logps(logits, labels, options.ignore_index(), options.temperature(), options.inplace_backward()));
}

namespace {

std::optional<at::Tensor> optional_labels(const torch::Tensor& labels) {
  return labels.defined() ? std::optional<at::Tensor>(labels) : std::nullopt;
}

// [B, T, V] logits and [B, T] labels -> the [B*T, V] and [B*T] views the row operators take.
void check_sequence_shapes(const torch::Tensor& logits, const torch::Tensor& labels, const char* logits_name) {
  TORCH_CHECK(logits.dim() == 3, logits_name, " must have shape [B, T, V], got ", logits.sizes());
  TORCH_CHECK(labels.dim() == 2 && labels.size(0) == logits.size(0) && labels.size(1) == logits.size(1),
              "labels must have shape [B, T] matching ", logits_name, " [", logits.size(0), ", ", logits.size(1),
              ", ", logits.size(2), "], got ", labels.sizes());
}

}  // namespace

torch::Tensor token_kl(const torch::Tensor& policy_logits, const torch::Tensor& ref_logits, const torch::Tensor& labels,
                       int64_t ignore_index, double temperature) {
  return std::get<0>(ops::token_kl(policy_logits, ref_logits, optional_labels(labels), ignore_index, temperature));
}

torch::Tensor sequence_kl(const torch::Tensor& policy_logits, const torch::Tensor& ref_logits,
                          const torch::Tensor& labels, int64_t ignore_index, double temperature) {
  check_sequence_shapes(policy_logits, labels, "policy_logits");
  TORCH_CHECK(ref_logits.sizes() == policy_logits.sizes(), "ref_logits must have the shape of policy_logits ",
              policy_logits.sizes(), ", got ", ref_logits.sizes());
  const int64_t batch = policy_logits.size(0), steps = policy_logits.size(1), vocab = policy_logits.size(2);
  const torch::Tensor kl = token_kl(policy_logits.reshape({batch * steps, vocab}),
                                    ref_logits.reshape({batch * steps, vocab}), labels.reshape({batch * steps}),
                                    ignore_index, temperature);
  // Ignored positions are exact zeros, so a plain sum is TDPO's masked sum.
  return kl.view({batch, steps}).sum(1);
}

torch::Tensor token_entropy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index,
                            double temperature) {
  return ops::token_entropy(logits, optional_labels(labels), ignore_index, temperature);
}

torch::Tensor wpo_log_weights(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index,
                              double temperature) {
  return std::get<0>(ops::wpo_token_stats(logits, labels, ignore_index, temperature));
}

torch::Tensor wpo_sequence_log_weights(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index,
                                   double temperature) {
  check_sequence_shapes(logits, labels, "logits");
  const int64_t batch = logits.size(0), steps = logits.size(1);
  const torch::Tensor log_w = wpo_log_weights(logits.reshape({batch * steps, logits.size(2)}),
                                              labels.reshape({batch * steps}), ignore_index, temperature)
                                  .view({batch, steps});
  const torch::Tensor counts = labels.ne(ignore_index).sum(1).clamp_min(1).to(log_w.scalar_type());
  return log_w.sum(1) / counts;
}

torch::Tensor fused_linear_logps(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& labels,
                                 const FusedLinearLogpsOptions& options) {
  return std::get<0>(ops::fused_linear_logps(hidden, weight, labels, options.ignore_index(), options.temperature(),
                                             options.chunk_bytes()));
}

}  // namespace prefopt
