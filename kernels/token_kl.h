// The token_kl operator's C++ entry points and shared input checks. Internal to the library: users reach it
// through prefopt/scoring.h or torch.ops.prefopt.token_kl.
#pragma once

#include <optional>
#include <tuple>

#include <ATen/core/Tensor.h>

#include "common/token_kl.h"

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

// The kernel parameters of the forward and the backward, shared by the CPU and CUDA kernels. The logits have a
// contiguous vocabulary dimension (vocab_contiguous); the outputs are allocated by the caller in acc_t.
template <typename scalar_t, typename acc_t>
kernels::TokenKlParams<scalar_t, acc_t> make_token_kl_params(const at::Tensor& policy, const at::Tensor& ref,
                                                            const std::optional<at::Tensor>& labels,
                                                            int64_t ignore_index, double temperature, at::Tensor& kl,
                                                            at::Tensor& policy_lse, at::Tensor& ref_lse) {
  const bool has_labels = labels.has_value() && labels->defined();
  kernels::TokenKlParams<scalar_t, acc_t> p{};
  p.policy = policy.const_data_ptr<scalar_t>();
  p.ref = ref.const_data_ptr<scalar_t>();
  p.labels = has_labels ? labels->const_data_ptr<int64_t>() : nullptr;
  p.rows = policy.size(0);
  p.vocab = policy.size(1);
  p.policy_row_stride = policy.stride(0);
  p.ref_row_stride = ref.stride(0);
  p.labels_stride = has_labels ? labels->stride(0) : 0;
  p.ignore_index = ignore_index;
  p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
  p.kl = kl.mutable_data_ptr<acc_t>();
  p.policy_lse = policy_lse.mutable_data_ptr<acc_t>();
  p.ref_lse = ref_lse.mutable_data_ptr<acc_t>();
  return p;
}

template <typename scalar_t, typename acc_t>
kernels::TokenKlBackwardParams<scalar_t, acc_t> make_token_kl_backward_params(
    const at::Tensor& policy, const at::Tensor& ref, const std::optional<at::Tensor>& labels, const at::Tensor& grad_kl,
    const at::Tensor& policy_lse, const at::Tensor& ref_lse, at::Tensor& grad_policy, int64_t ignore_index,
    double temperature) {
  const bool has_labels = labels.has_value() && labels->defined();
  kernels::TokenKlBackwardParams<scalar_t, acc_t> p{};
  p.policy = policy.const_data_ptr<scalar_t>();
  p.ref = ref.const_data_ptr<scalar_t>();
  p.labels = has_labels ? labels->const_data_ptr<int64_t>() : nullptr;
  p.grad_kl = grad_kl.const_data_ptr<acc_t>();
  p.policy_lse = policy_lse.const_data_ptr<acc_t>();
  p.ref_lse = ref_lse.const_data_ptr<acc_t>();
  p.grad_policy = grad_policy.mutable_data_ptr<scalar_t>();
  p.rows = policy.size(0);
  p.vocab = policy.size(1);
  p.policy_row_stride = policy.stride(0);
  p.ref_row_stride = ref.stride(0);
  p.labels_stride = has_labels ? labels->stride(0) : 0;
  p.grad_stride = grad_policy.stride(0);
  p.ignore_index = ignore_index;
  p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
  return p;
}

}  // namespace detail
}  // namespace prefopt::ops
