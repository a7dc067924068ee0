// Meta (shape-only) kernels of fused_linear_logps and its backward: the same checks as the device kernels.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../fused_linear_logps.h"

namespace prefopt::ops {
namespace {

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_meta(const at::Tensor& hidden, const at::Tensor& weight,
                                                           const at::Tensor& labels, int64_t /*ignore_index*/,
                                                           double temperature, int64_t chunk_bytes) {
  detail::check_fused_linear_logps_inputs(hidden, weight, labels, temperature, chunk_bytes);
  const auto options = hidden.options().dtype(at::toOpMathType(hidden.scalar_type()));
  return {at::empty({hidden.size(0)}, options), at::empty({hidden.size(0)}, options)};
}

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_backward_meta(
    const at::Tensor& grad_logps, const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
    const at::Tensor& lse, int64_t /*ignore_index*/, double temperature, int64_t chunk_bytes,
    std::array<bool, 2> output_mask) {
  detail::check_fused_linear_logps_inputs(hidden, weight, labels, temperature, chunk_bytes);
  return {output_mask[0] ? at::empty(hidden.sizes(), hidden.options()) : at::Tensor(),
          output_mask[1] ? at::empty(weight.sizes(), weight.options()) : at::Tensor()};
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Meta, m) {
  m.impl("fused_linear_logps", &fused_linear_logps_meta);
  m.impl("_fused_linear_logps_backward", &fused_linear_logps_backward_meta);
}

}  // namespace prefopt::ops
