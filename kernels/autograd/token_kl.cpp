// Autograd for token_kl: saves both logits, the labels and the two row LSEs (O(N) beyond the inputs) and calls
// the registered backward op. The gradient flows to policy_logits only: the reference side is detached by
// definition (TDPO, LOSSES.md section 3). The LSE outputs are not differentiable; no double backward.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "../token_kl.h"

namespace prefopt::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class TokenKlBackwardFunction : public torch::autograd::Function<TokenKlBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* /*ctx*/, const at::Tensor& grad_kl, const at::Tensor& policy,
                            const at::Tensor& ref, const std::optional<at::Tensor>& labels,
                            const at::Tensor& policy_lse, const at::Tensor& ref_lse, int64_t ignore_index,
                            double temperature) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return detail::token_kl_backward(grad_kl, policy, ref, labels, policy_lse, ref_lse, ignore_index, temperature);
  }
  static variable_list backward(AutogradContext* /*ctx*/, const variable_list& /*grad_output*/) {
    TORCH_CHECK(false, "prefopt::token_kl does not support double backward");
  }
};

class TokenKlFunction : public torch::autograd::Function<TokenKlFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& policy, const at::Tensor& ref,
                               const std::optional<at::Tensor>& labels, int64_t ignore_index, double temperature) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [kl, policy_lse, ref_lse] = token_kl(policy, ref, labels, ignore_index, temperature);
    const at::Tensor label_tensor = labels.has_value() ? *labels : at::Tensor();
    ctx->save_for_backward({policy, ref.detach(), label_tensor, policy_lse, ref_lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["temperature"] = temperature;
    ctx->mark_non_differentiable({policy_lse, ref_lse});
    return {kl, policy_lse, ref_lse};
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad_kl = grad_output[0];
    if (!grad_kl.defined()) grad_kl = at::zeros_like(saved[3]);
    const std::optional<at::Tensor> labels = saved[2].defined() ? std::optional<at::Tensor>(saved[2]) : std::nullopt;
    const at::Tensor grad_policy = TokenKlBackwardFunction::apply(
        grad_kl, saved[0], saved[1], labels, saved[3], saved[4], ctx->saved_data["ignore_index"].toInt(),
        ctx->saved_data["temperature"].toDouble());
    return {grad_policy, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> token_kl_autograd(const at::Tensor& policy, const at::Tensor& ref,
                                                                 const std::optional<at::Tensor>& labels,
                                                                 int64_t ignore_index, double temperature) {
  auto out = TokenKlFunction::apply(policy, ref, labels, ignore_index, temperature);
  return {out[0], out[1], out[2]};
}

at::Tensor token_kl_backward_autograd(const at::Tensor& grad_kl, const at::Tensor& policy, const at::Tensor& ref,
                                      const std::optional<at::Tensor>& labels, const at::Tensor& policy_lse,
                                      const at::Tensor& ref_lse, int64_t ignore_index, double temperature) {
  return TokenKlBackwardFunction::apply(grad_kl, policy, ref, labels, policy_lse, ref_lse, ignore_index, temperature);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Autograd, m) {
  m.impl("token_kl", &token_kl_autograd);
  m.impl("_token_kl_backward", &token_kl_backward_autograd);
}

}  // namespace prefopt::ops
