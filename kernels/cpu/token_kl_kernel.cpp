// CPU kernel of token_kl: checks, a params struct, and a call into the vectorised row loops of
// token_kl_rows.h (capability.h picks the instruction set). Both logits rows are read once in their own dtype
// into a running (LSE_ref, LSE_pol, cross term) state accumulated in fp32 (fp64 for fp64); no probability or
// log-probability row exists. The backward reads both rows once more and writes g/T (p_pol - p_ref).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/token_kl.h"
#include "../token_kl.h"
#include "../token_logps.h"
#include "vec_rows.h"
#include "huge_pages.h"

namespace prefopt::ops {
namespace {

template <typename scalar_t, typename acc_t>
void forward_rows(const kernels::TokenKlParams<scalar_t, acc_t>& p) {
  PREFOPT_CPU_ROWS(token_kl_forward, p);
}

template <typename scalar_t, typename acc_t>
void backward_rows(const kernels::TokenKlBackwardParams<scalar_t, acc_t>& p) {
  PREFOPT_CPU_ROWS(token_kl_backward, p);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> token_kl_cpu(const at::Tensor& policy_in, const at::Tensor& ref_in,
                                                            const std::optional<at::Tensor>& labels,
                                                            int64_t ignore_index, double temperature) {
  detail::check_token_kl_inputs(policy_in, ref_in, labels, temperature);
  const at::Tensor policy = detail::vocab_contiguous(policy_in);
  const at::Tensor ref = detail::vocab_contiguous(ref_in);
  const auto options = policy.options().dtype(at::toOpMathType(policy.scalar_type()));
  const int64_t n = policy.size(0);
  at::Tensor kl = at::empty({n}, options), policy_lse = at::empty({n}, options), ref_lse = at::empty({n}, options);
  if (n == 0) return {kl, policy_lse, ref_lse};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, policy.scalar_type(), "token_kl_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = detail::make_token_kl_params<scalar_t, acc_t>(policy, ref, labels, ignore_index, temperature, kl,
                                                            policy_lse, ref_lse);
    forward_rows(p);
  });
  return {kl, policy_lse, ref_lse};
}

at::Tensor token_kl_backward_cpu(const at::Tensor& grad_kl_in, const at::Tensor& policy_in, const at::Tensor& ref_in,
                                 const std::optional<at::Tensor>& labels, const at::Tensor& policy_lse_in,
                                 const at::Tensor& ref_lse_in, int64_t ignore_index, double temperature) {
  detail::check_token_kl_inputs(policy_in, ref_in, labels, temperature);
  detail::check_token_kl_backward_inputs(grad_kl_in, policy_in, policy_lse_in, ref_lse_in);
  const at::Tensor policy = detail::vocab_contiguous(policy_in);
  const at::Tensor ref = detail::vocab_contiguous(ref_in);
  at::Tensor grad = kernels::cpu::empty_for_full_write(policy.sizes(), policy.options());
  if (policy.size(0) == 0) return grad;
  const auto acc_dtype = at::toOpMathType(policy.scalar_type());
  const at::Tensor grad_kl = grad_kl_in.to(acc_dtype).contiguous();
  const at::Tensor policy_lse = policy_lse_in.contiguous(), ref_lse = ref_lse_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, policy.scalar_type(), "token_kl_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = detail::make_token_kl_backward_params<scalar_t, acc_t>(policy, ref, labels, grad_kl, policy_lse, ref_lse,
                                                                     grad, ignore_index, temperature);
    backward_rows(p);
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CPU, m) {
  m.impl("token_kl", &token_kl_cpu);
  m.impl("_token_kl_backward", &token_kl_backward_cpu);
}

}  // namespace prefopt::ops
