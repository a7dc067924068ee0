// Meta (shape-only) kernels of token_kl and its backward: the same checks as the device kernels, no data.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../token_kl.h"

namespace prefopt::ops {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> token_kl_meta(const at::Tensor& policy, const at::Tensor& ref,
                                                             const std::optional<at::Tensor>& labels,
                                                             int64_t /*ignore_index*/, double temperature) {
  detail::check_token_kl_inputs(policy, ref, labels, temperature);
  const auto options = policy.options().dtype(at::toOpMathType(policy.scalar_type()));
  const int64_t n = policy.size(0);
  return {at::empty({n}, options), at::empty({n}, options), at::empty({n}, options)};
}

at::Tensor token_kl_backward_meta(const at::Tensor& grad_kl, const at::Tensor& policy, const at::Tensor& ref,
                                  const std::optional<at::Tensor>& labels, const at::Tensor& policy_lse,
                                  const at::Tensor& ref_lse, int64_t /*ignore_index*/, double temperature) {
  detail::check_token_kl_inputs(policy, ref, labels, temperature);
  detail::check_token_kl_backward_inputs(grad_kl, policy, policy_lse, ref_lse);
  return at::empty(policy.sizes(), policy.options().memory_format(at::MemoryFormat::Contiguous));
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Meta, m) {
  m.impl("token_kl", &token_kl_meta);
  m.impl("_token_kl_backward", &token_kl_backward_meta);
}

}  // namespace prefopt::ops
