// Per-sequence scores of packed sequences: the per-token fused operators over the [S, V] rows of the packed row
// (or its [S, H] hidden states), then segment_sum by cu_seqlens. Never forms a padded [N, T] tensor.
#include <prefopt/packed_scoring.h>

#include <ATen/ATen.h>

#include "../kernels/segment_sum.h"

namespace prefopt {

namespace {

void check_packed(const torch::Tensor& rows, const torch::Tensor& labels, const char* rows_name, const char* shape) {
  TORCH_CHECK(rows.defined() && rows.dim() == 2, rows_name, " must have shape ", shape,
              " (one row per packed token), got ", rows.defined() ? rows.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == rows.size(0),
              "labels must have shape [S] with S = ", rows.size(0), " (the rows of ", rows_name, "), got ",
              labels.defined() ? labels.sizes() : c10::IntArrayRef{});
}

torch::Tensor on_device_of(const torch::Tensor& cu_seqlens, const torch::Tensor& like) {
  return cu_seqlens.device() == like.device() ? cu_seqlens : cu_seqlens.to(like.device());
}

}  // namespace

torch::Tensor segment_sum(const torch::Tensor& values, const torch::Tensor& cu_seqlens) {
  return ops::segment_sum(values, cu_seqlens);
}

torch::Tensor segment_counts(const torch::Tensor& labels, const torch::Tensor& cu_seqlens, int64_t ignore_index) {
  TORCH_CHECK(labels.defined() && labels.dim() == 1, "labels must have shape [S], got ",
              labels.defined() ? labels.sizes() : c10::IntArrayRef{});
  const torch::Tensor scored = labels.ne(ignore_index).to(torch::kFloat64);
  return ops::segment_sum(scored, on_device_of(cu_seqlens, labels)).round().to(torch::kLong);
}

SequenceLogps packed_sequence_logps(const torch::Tensor& logits, const torch::Tensor& labels,
                                    const torch::Tensor& cu_seqlens, const SequenceLogpsOptions& options) {
  check_packed(logits, labels, "logits", "[S, V]");
  const torch::Tensor cu = on_device_of(cu_seqlens, logits);
  const torch::Tensor per_token =
      token_logps(logits, labels,
                  TokenLogpsOptions()
                      .ignore_index(options.ignore_index())
                      .temperature(options.temperature())
                      .inplace_backward(options.inplace_backward()));
  // Ignored positions are exact zeros, so the segment sum is the masked sum.
  torch::Tensor logps = ops::segment_sum(per_token, cu);
  if (options.average()) {
    logps = logps / segment_counts(labels, cu, options.ignore_index()).clamp_min(1).to(logps.scalar_type());
  }
  return {logps, per_token};
}

SequenceLogps packed_fused_linear_logps(const torch::Tensor& hidden, const torch::Tensor& weight,
                                        const torch::Tensor& labels, const torch::Tensor& cu_seqlens,
                                        const FusedLinearLogpsOptions& options) {
  check_packed(hidden, labels, "hidden", "[S, H]");
  const torch::Tensor per_token = fused_linear_logps(hidden, weight, labels, options);
  return {ops::segment_sum(per_token, on_device_of(cu_seqlens, hidden)), per_token};
}

torch::Tensor packed_sequence_kl(const torch::Tensor& policy_logits, const torch::Tensor& ref_logits,
                                 const torch::Tensor& labels, const torch::Tensor& cu_seqlens, int64_t ignore_index,
                                 double temperature) {
  check_packed(policy_logits, labels, "policy_logits", "[S, V]");
  TORCH_CHECK(ref_logits.defined() && ref_logits.sizes() == policy_logits.sizes(),
              "ref_logits must have the shape of policy_logits ", policy_logits.sizes(), ", got ",
              ref_logits.defined() ? ref_logits.sizes() : c10::IntArrayRef{});
  const torch::Tensor kl = token_kl(policy_logits, ref_logits, labels, ignore_index, temperature);
  return ops::segment_sum(kl, on_device_of(cu_seqlens, policy_logits));
}

torch::Tensor packed_wpo_sequence_log_weights(const torch::Tensor& logits, const torch::Tensor& labels,
                                              const torch::Tensor& cu_seqlens, int64_t ignore_index,
                                              double temperature) {
  check_packed(logits, labels, "logits", "[S, V]");
  const torch::Tensor cu = on_device_of(cu_seqlens, logits);
  const torch::Tensor log_w = wpo_log_weights(logits, labels, ignore_index, temperature);
  const torch::Tensor sums = ops::segment_sum(log_w, cu);
  return (sums / segment_counts(labels, cu, ignore_index).clamp_min(1).to(sums.scalar_type())).detach();
}

torch::Tensor packed_sequence_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                      const torch::Tensor& cu_seqlens, int64_t ignore_index, double temperature) {
  check_packed(logits, labels, "logits", "[S, V]");
  const torch::Tensor h = token_entropy(logits, labels, ignore_index, temperature);
  return ops::segment_sum(h, on_device_of(cu_seqlens, logits)).detach();
}

}  // namespace prefopt
