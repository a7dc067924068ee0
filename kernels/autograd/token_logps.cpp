// Autograd for token_logps: saves the logits, labels and the row LSE (O(N), not O(N*V)) and calls the
// registered backward op, so the backward runs on whichever device kernel the logits live on.
// The LSE output is not differentiable; double backward is not supported and says so.
#include <ATen/ATen.h>
#include <torch/autograd.h>
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

class TokenLogpsFunction : public torch::autograd::Function<TokenLogpsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& labels,
                               int64_t ignore_index, double temperature) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [logps, lse] = token_logps(logits, labels, ignore_index, temperature);
    ctx->save_for_backward({logits, labels, lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["temperature"] = temperature;
    ctx->mark_non_differentiable({lse});
    return {logps, lse};
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad_logps = grad_output[0];
    if (!grad_logps.defined()) grad_logps = at::zeros_like(saved[2]);
    const at::Tensor grad_logits = TokenLogpsBackwardFunction::apply(
        grad_logps, saved[0], saved[1], saved[2], ctx->saved_data["ignore_index"].toInt(),
        ctx->saved_data["temperature"].toDouble());
    return {grad_logits, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> token_logps_autograd(const at::Tensor& logits, const at::Tensor& labels,
                                                        int64_t ignore_index, double temperature) {
  auto out = TokenLogpsFunction::apply(logits, labels, ignore_index, temperature);
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
}

}  // namespace prefopt::ops
