// Autograd for token_logps: saves the logits, labels and the row LSE (O(N), not O(N*V)) and calls the
// registered backward op, so the backward runs on whichever device kernel the logits live on. With
// inplace_backward (and where it is safe) the backward writes the gradient into the saved logits' buffer and
// returns that buffer, so no [N, V] gradient is allocated. The LSE output is not differentiable; double
// backward is not supported and says so.
#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

#include "../token_logps.h"

namespace prefopt::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class TokenLogpsBackwardFunction : public torch::autograd::Function<TokenLogpsBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* /*ctx*/, const at::Tensor& grad_logps, const at::Tensor& logits,
                            const at::Tensor& labels, const at::Tensor& lse, int64_t ignore_index,
                            double temperature) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return detail::token_logps_backward(grad_logps, logits, labels, lse, ignore_index, temperature);
  }
  static variable_list backward(AutogradContext* /*ctx*/, const variable_list& /*grad_output*/) {
    TORCH_CHECK(false, "prefopt::token_logps does not support double backward");
  }
};

// Writing the gradient over the logits is safe only for an intermediate tensor (a leaf's values are the
// user's) whose elements each live at their own address.
bool can_write_in_place(const at::Tensor& logits) {
  return logits.requires_grad() && !logits.is_leaf() && (logits.size(1) <= 1 || logits.stride(1) == 1) &&
         at::has_internal_overlap(logits) == at::MemOverlap::No;
}

class TokenLogpsFunction : public torch::autograd::Function<TokenLogpsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& labels,
                               int64_t ignore_index, double temperature, bool inplace_backward) {
    const bool in_place = inplace_backward && can_write_in_place(logits);
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [logps, lse] = token_logps(logits, labels, ignore_index, temperature, inplace_backward);
    ctx->save_for_backward({logits, labels, lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["in_place"] = in_place;
    ctx->mark_non_differentiable({lse});
    return {logps, lse};
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad_logps = grad_output[0];
    if (!grad_logps.defined()) grad_logps = at::zeros_like(saved[2]);
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    // create_graph needs a differentiable (out-of-place) gradient; it then reaches the double-backward error.
    if (ctx->saved_data["in_place"].toBool() && !at::GradMode::is_enabled()) {
      at::AutoDispatchBelowADInplaceOrView guard;
      const at::Tensor logits = saved[0].detach();
      detail::token_logps_backward_inplace(grad_logps, logits, saved[1], saved[2], ignore_index, temperature);
      return {logits, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const at::Tensor grad_logits =
        TokenLogpsBackwardFunction::apply(grad_logps, saved[0], saved[1], saved[2], ignore_index, temperature);
    return {grad_logits, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> token_logps_autograd(const at::Tensor& logits, const at::Tensor& labels,
                                                        int64_t ignore_index, double temperature,
                                                        bool inplace_backward) {
  auto out = TokenLogpsFunction::apply(logits, labels, ignore_index, temperature, inplace_backward);
  return {out[0], out[1]};
}

at::Tensor token_logps_backward_autograd(const at::Tensor& grad_logps, const at::Tensor& logits,
                                         const at::Tensor& labels, const at::Tensor& lse, int64_t ignore_index,
                                         double temperature) {
  return TokenLogpsBackwardFunction::apply(grad_logps, logits, labels, lse, ignore_index, temperature);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Autograd, m) {
  m.impl("token_logps", &token_logps_autograd);
  m.impl("_token_logps_backward", &token_logps_backward_autograd);
  // A mutating op without a derivative: error if a gradient is asked for through it, and bump the version
  // counter of the logits it overwrites.
  m.impl("_token_logps_backward_inplace", torch::autograd::autogradNotImplementedFallback());
}

TORCH_LIBRARY_IMPL(prefopt, ADInplaceOrView, m) {
  m.impl("_token_logps_backward_inplace", torch::autograd::autogradNotImplementedInplaceOrViewFallback());
}

}  // namespace prefopt::ops
