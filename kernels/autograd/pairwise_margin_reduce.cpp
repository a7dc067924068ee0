// Autograd for pairwise_margin_reduce: saves the scores, the per-anchor output (the log-sum-exp reduction's
// gradient needs it) and the constant per-item tensors, all [B, K], and calls the registered backward op. The
// gradient flows to the scores only; weight_sum is not differentiable; no double backward.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "../pairwise_margin_reduce.h"

namespace prefopt::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor value_or_undefined(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? t->detach() : at::Tensor();
}

std::optional<at::Tensor> optional_of(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

class PairwiseMarginFunction : public torch::autograd::Function<PairwiseMarginFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& scores, const std::optional<at::Tensor>& labels,
                               const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& gain,
                               const std::optional<at::Tensor>& discount, const std::optional<at::Tensor>& positions,
                               c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
                               double label_margin, int64_t max_distance) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [per_anchor, weight_sum] =
        pairwise_margin_reduce(scores, labels, mask, gain, discount, positions,
                               PairwiseMarginOptions()
                                   .fn(std::string(fn))
                                   .reduce(std::string(reduce))
                                   .pairs(std::string(pairs))
                                   .label_margin(label_margin)
                                   .max_distance(max_distance));
    ctx->save_for_backward({scores, per_anchor, value_or_undefined(labels), value_or_undefined(mask),
                            value_or_undefined(gain), value_or_undefined(discount), value_or_undefined(positions)});
    ctx->saved_data["fn"] = std::string(fn);
    ctx->saved_data["reduce"] = std::string(reduce);
    ctx->saved_data["pairs"] = std::string(pairs);
    ctx->saved_data["label_margin"] = label_margin;
    ctx->saved_data["max_distance"] = max_distance;
    ctx->mark_non_differentiable({weight_sum});
    return {per_anchor, weight_sum};
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    TORCH_CHECK(!at::GradMode::is_enabled(), "prefopt::pairwise_margin_reduce does not support double backward");
    const auto s = ctx->get_saved_variables();
    at::Tensor g = grad_output[0];
    if (!g.defined()) g = at::zeros_like(s[1]);
    at::AutoDispatchBelowADInplaceOrView guard;
    const at::Tensor grad_scores = detail::pairwise_margin_reduce_backward(
        g, s[0], s[1], optional_of(s[2]), optional_of(s[3]), optional_of(s[4]), optional_of(s[5]), optional_of(s[6]),
        ctx->saved_data["fn"].toStringRef(), ctx->saved_data["reduce"].toStringRef(),
        ctx->saved_data["pairs"].toStringRef(), ctx->saved_data["label_margin"].toDouble(),
        ctx->saved_data["max_distance"].toInt());
    variable_list grads(11);
    grads[0] = grad_scores;
    return grads;
  }
};

std::tuple<at::Tensor, at::Tensor> pairwise_margin_reduce_autograd(
    const at::Tensor& scores, const std::optional<at::Tensor>& labels, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& gain, const std::optional<at::Tensor>& discount,
    const std::optional<at::Tensor>& positions, c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
    double label_margin, int64_t max_distance) {
  auto out = PairwiseMarginFunction::apply(scores, labels, mask, gain, discount, positions, fn, reduce, pairs,
                                           label_margin, max_distance);
  return {out[0], out[1]};
}

at::Tensor pairwise_margin_reduce_backward_autograd(
    const at::Tensor& grad_per_anchor, const at::Tensor& scores, const at::Tensor& per_anchor,
    const std::optional<at::Tensor>& labels, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& gain, const std::optional<at::Tensor>& discount,
    const std::optional<at::Tensor>& positions, c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
    double label_margin, int64_t max_distance) {
  at::AutoDispatchBelowADInplaceOrView guard;
  return detail::pairwise_margin_reduce_backward(grad_per_anchor, scores, per_anchor, labels, mask, gain, discount,
                                                 positions, fn, reduce, pairs, label_margin, max_distance);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Autograd, m) {
  m.impl("pairwise_margin_reduce", &pairwise_margin_reduce_autograd);
  m.impl("_pairwise_margin_reduce_backward", &pairwise_margin_reduce_backward_autograd);
}

}  // namespace prefopt::ops
