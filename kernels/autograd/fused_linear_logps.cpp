// Autograd for fused_linear_logps: saves hidden, weight, labels and the row LSE (no logits) and calls the
// registered backward op, which recomputes the logits chunk by chunk. Gradients flow to hidden and weight (only
// those that need one are computed); the LSE output is not differentiable; no double backward.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "../fused_linear_logps.h"

namespace prefopt::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedLinearLogpsFunction : public torch::autograd::Function<FusedLinearLogpsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& labels, int64_t ignore_index, double temperature,
                               int64_t chunk_bytes) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [logps, lse] = fused_linear_logps(hidden, weight, labels, ignore_index, temperature, chunk_bytes);
    ctx->save_for_backward({hidden, weight, labels, lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk_bytes"] = chunk_bytes;
    ctx->mark_non_differentiable({lse});
    return {logps, lse};
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    TORCH_CHECK(!at::GradMode::is_enabled(), "prefopt::fused_linear_logps does not support double backward");
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad_logps = grad_output[0];
    if (!grad_logps.defined()) grad_logps = at::zeros_like(saved[3]);
    const std::array<bool, 2> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [grad_hidden, grad_weight] = detail::fused_linear_logps_backward(
        grad_logps, saved[0], saved[1], saved[2], saved[3], ctx->saved_data["ignore_index"].toInt(),
        ctx->saved_data["temperature"].toDouble(), ctx->saved_data["chunk_bytes"].toInt(), mask);
    return {grad_hidden, grad_weight, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_autograd(const at::Tensor& hidden, const at::Tensor& weight,
                                                               const at::Tensor& labels, int64_t ignore_index,
                                                               double temperature, int64_t chunk_bytes) {
  auto out = FusedLinearLogpsFunction::apply(hidden, weight, labels, ignore_index, temperature, chunk_bytes);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_backward_autograd(
    const at::Tensor& grad_logps, const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
    const at::Tensor& lse, int64_t ignore_index, double temperature, int64_t chunk_bytes,
    std::array<bool, 2> output_mask) {
  // Not differentiable itself: run below autograd, so its outputs never carry a graph.
  at::AutoDispatchBelowADInplaceOrView guard;
  return detail::fused_linear_logps_backward(grad_logps, hidden, weight, labels, lse, ignore_index, temperature,
                                             chunk_bytes, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Autograd, m) {
  m.impl("fused_linear_logps", &fused_linear_logps_autograd);
  m.impl("_fused_linear_logps_backward", &fused_linear_logps_backward_autograd);
}

}  // namespace prefopt::ops
