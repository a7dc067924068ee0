// The token_kl operator's C++ entry points and shared input checks. Internal to the library: users reach it
// through prefopt/scoring.h or torch.ops.prefopt.token_kl.
#pragma once

#include <optional>
#include <tuple>

#include <ATen/core/Tensor.h>

namespace prefopt::ops {

// policy_logits, ref_logits [N, V] (same dtype: fp32/bf16/fp16/fp64), labels [N] int64 or none (rows whose
// label is ignore_index give 0 and are not read). Returns (kl [N], policy_lse [N], ref_lse [N]) in the
// accumulation dtype; kl = KL(ref || policy) of softmax(logits / T), differentiable w.r.t. policy_logits only.
std::tuple<at::Tensor, at::Tensor, at::Tensor> token_kl(const at::Tensor& policy_logits, const at::Tensor& ref_logits,
                                                        const std::optional<at::Tensor>& labels, int64_t ignore_index,
                                                        double temperature);

namespace detail {

// grad_kl [N] -> grad of policy_logits [N, V] in its dtype.
at::Tensor token_kl_backward(const at::Tensor& grad_kl, const at::Tensor& policy_logits, const at::Tensor& ref_logits,
                             const std::optional<at::Tensor>& labels, const at::Tensor& policy_lse,
                             const at::Tensor& ref_lse, int64_t ignore_index, double temperature);

void check_token_kl_inputs(const at::Tensor& policy_logits, const at::Tensor& ref_logits,
                           const std::optional<at::Tensor>& labels, double temperature);

void check_token_kl_backward_inputs(const at::Tensor& grad_kl, const at::Tensor& policy_logits,
                                    const at::Tensor& policy_lse, const at::Tensor& ref_lse);

// Shared by token_kl, token_entropy and wpo_token_stats: optional row labels [N] int64 on `device`.
void check_row_labels(const std::optional<at::Tensor>& labels, const at::Tensor& logits, const char* logits_name);

// Shared: [N, V] floating logits with a vocabulary of at least 1 (unless N = 0).
void check_logits_2d(const at::Tensor& logits, const char* name);

}  // namespace detail
}  // namespace prefopt::ops
