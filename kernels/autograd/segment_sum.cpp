// Autograd for segment_sum: each token's gradient is its segment's, a repeat of the [N] output gradient by the
// segment lengths (ATen's repeat_interleave with the output size given, so no device sync). Saves only the
// offsets; no double backward through the saved state is needed because the backward is itself differentiable.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "../segment_sum.h"

namespace prefopt::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SegmentSumFunction : public torch::autograd::Function<SegmentSumFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& values, const at::Tensor& cu_seqlens) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor out = segment_sum(values, cu_seqlens);
    ctx->save_for_backward({cu_seqlens});
    ctx->saved_data["total"] = values.size(0);
    ctx->saved_data["dtype"] = values.scalar_type();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    const at::Tensor offsets = ctx->get_saved_variables()[0].to(at::kLong);
    const int64_t total = ctx->saved_data["total"].toInt();
    const auto dtype = ctx->saved_data["dtype"].toScalarType();
    const at::Tensor lengths = offsets.slice(0, 1) - offsets.slice(0, 0, -1);
    at::Tensor g = grad_output[0];
    at::Tensor grad_values = g.defined()
                                 ? at::repeat_interleave(g, lengths, /*dim=*/0, /*output_size=*/total).to(dtype)
                                 : at::Tensor();
    return {grad_values, at::Tensor()};
  }
};

at::Tensor segment_sum_autograd(const at::Tensor& values, const at::Tensor& cu_seqlens) {
  return SegmentSumFunction::apply(values, cu_seqlens);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Autograd, m) { m.impl("segment_sum", &segment_sum_autograd); }

}  // namespace prefopt::ops
