// SPO's preference-degree head and loss (LOSSES.md section 6): pooling of last hidden states, a linear head
// over K degrees, its cross-entropy, and the combination with an alignment loss. The [N, K] logits are
// tiny; the only large tensor, the hidden states, is read once by the pooling.
#include <prefopt/losses/degree.h>

#include <limits>
#include <string>

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include "reduction.h"
#include "../common/score_checks.h"

namespace prefopt {

std::string to_string(DegreePooling pooling) { return pooling == DegreePooling::Last ? "last" : "mean"; }

DegreePooling degree_pooling_from_string(std::string_view name) {
  if (name == "mean") return DegreePooling::Mean;
  if (name == "last") return DegreePooling::Last;
  TORCH_CHECK(false, "pooling must be one of: mean, last; got '", name, "'");
}

namespace functional {

torch::Tensor pool_hidden_states(const torch::Tensor& hidden_states, const torch::Tensor& attention_mask,
                                 DegreePooling pooling) {
  TORCH_CHECK(hidden_states.defined() && hidden_states.dim() == 3, "hidden_states must have shape [N, T, E], got ",
              hidden_states.defined() ? hidden_states.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(hidden_states.scalar_type()), "hidden_states must be floating, got ",
              hidden_states.scalar_type());
  const int64_t n = hidden_states.size(0), t = hidden_states.size(1);
  at::Tensor mask = at::ones({n, t}, hidden_states.options().dtype(at::kBool));
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == n && attention_mask.size(1) == t,
                "attention_mask must have shape [", n, ", ", t, "] matching hidden_states, got ", attention_mask.sizes());
    TORCH_CHECK(attention_mask.device() == hidden_states.device(), "attention_mask must be on the device of hidden_states (",
                hidden_states.device(), "), got ", attention_mask.device());
    mask = attention_mask.scalar_type() == at::kBool ? attention_mask : attention_mask.ne(0);
  }
  const at::Tensor weights = mask.to(hidden_states.scalar_type());
  if (pooling == DegreePooling::Mean) {
    const at::Tensor counts = weights.sum(1, /*keepdim=*/true).clamp_min(1);
    return (hidden_states * weights.unsqueeze(2)).sum(1) / counts;
  }
  // Last attended position: the largest index with the mask set (0 when none; then zeroed).
  const at::Tensor positions = at::arange(t, mask.options().dtype(at::kLong)).unsqueeze(0);
  const at::Tensor last = at::where(mask, positions, at::full({}, -1, positions.options())).amax(1);  // [N]
  const at::Tensor index = last.clamp_min(0).view({n, 1, 1}).expand({n, 1, hidden_states.size(2)});
  const at::Tensor picked = hidden_states.gather(1, index).squeeze(1);
  return picked * last.ge(0).to(picked.scalar_type()).unsqueeze(1);
}

LossOutput degree_loss(const torch::Tensor& logits, const torch::Tensor& degrees, const DegreeLossOptions& options) {
  TORCH_CHECK(logits.defined() && logits.dim() == 2, "logits must have shape [N, K], got ",
              logits.defined() ? logits.sizes() : at::IntArrayRef{});
  TORCH_CHECK(logits.size(0) >= 1 && logits.size(1) >= 2,
              "logits must hold at least one example and two degrees, got shape ", logits.sizes());
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), "logits must be floating, got ", logits.scalar_type());
  TORCH_CHECK(degrees.defined() && degrees.dim() == 1 && degrees.size(0) == logits.size(0),
              "degrees must have shape [N] matching logits ", logits.sizes(), ", got ",
              degrees.defined() ? degrees.sizes() : at::IntArrayRef{});
  TORCH_CHECK(!at::isFloatingType(degrees.scalar_type()) && degrees.scalar_type() != at::kBool,
              "degrees must be integer, got ", degrees.scalar_type());
  TORCH_CHECK(degrees.device() == logits.device(), "degrees must be on the device of logits (", logits.device(),
              "), got ", degrees.device());
  detail::check_option_range(options.label_smoothing(), "label_smoothing", 0.0, 1.0 - 1e-12, /*low_open=*/false);
  const int64_t k = logits.size(1);
  const at::Tensor target = degrees.to(at::kLong);
  if (options.check_inputs()) {
    const at::Tensor outside = target.lt(0).logical_or(target.ge(k));
    if (detail::any_set(outside, "degrees must be in [0, " + std::to_string(k) + ")")) {
      const int64_t index = outside.nonzero()[0][0].item<int64_t>();
      TORCH_CHECK(false, "degrees must be in [0, ", k, "), got ", target[index].item<int64_t>(), " at index ", index);
    }
  }
  const auto in_dtype = logits.scalar_type();
  const at::Tensor logp = at::log_softmax(logits.to(at::toOpMathType(in_dtype)), 1);
  at::Tensor losses = -logp.gather(1, target.unsqueeze(1)).squeeze(1);
  const double eps = options.label_smoothing();
  if (eps > 0) losses = (1 - eps) * losses - eps * logp.mean(1);

  LossOutput out;
  out.losses = losses.to(in_dtype);
  out.loss = detail::reduce(out.losses, options.reduction());
  out.metrics["degree/loss"] = losses.detach().to(at::kFloat).mean();
  out.metrics["degree/accuracy"] = logp.detach().argmax(1).eq(target).to(at::kFloat).mean();
  return out;
}

LossOutput spo_loss(const LossOutput& align, const torch::Tensor& degree_logits, const torch::Tensor& degrees,
                    const SPOLossOptions& options) {
  detail::check_option_range(options.degree_weight(), "degree_weight", 0.0, std::numeric_limits<double>::max(),
                             /*low_open=*/false);
  TORCH_CHECK(align.loss.defined() && align.loss.dim() == 0,
              "align.loss must be the reduced (0-dim) alignment loss; use reduction kMean or kSum, got ",
              align.loss.defined() ? align.loss.sizes() : at::IntArrayRef{});
  const LossOutput degree =
      degree_loss(degree_logits, degrees,
                  DegreeLossOptions().label_smoothing(options.label_smoothing()).check_inputs(options.check_inputs()));
  LossOutput out = align;
  out.loss = align.loss + options.degree_weight() * degree.loss.to(align.loss.scalar_type());
  for (const auto& [name, value] : degree.metrics) out.metrics[name] = value;
  return out;
}

}  // namespace functional

DegreeHeadImpl::DegreeHeadImpl(DegreeHeadOptions options_) : options(std::move(options_)) { reset(); }

void DegreeHeadImpl::reset() {
  TORCH_CHECK(options.hidden_size() >= 1, "hidden_size must be >= 1, got ", options.hidden_size());
  TORCH_CHECK(options.num_degrees() >= 2, "num_degrees must be >= 2, got ", options.num_degrees());
  linear = register_module(
      "linear", torch::nn::Linear(torch::nn::LinearOptions(options.hidden_size(), options.num_degrees()).bias(options.bias())));
}

void DegreeHeadImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::DegreeHead(hidden_size=" << options.hidden_size() << ", num_degrees=" << options.num_degrees()
         << ", pooling=" << to_string(options.pooling()) << ")";
}

torch::Tensor DegreeHeadImpl::forward(const torch::Tensor& hidden_states, const torch::Tensor& attention_mask) {
  const at::Tensor pooled = functional::pool_hidden_states(hidden_states, attention_mask, options.pooling());
  TORCH_CHECK(pooled.size(1) == options.hidden_size(), "hidden_states must have E = hidden_size (",
              options.hidden_size(), ") in its last dimension, got ", pooled.size(1));
  return linear(pooled.to(linear->weight.scalar_type()));
}

SPOLossImpl::SPOLossImpl(SPOLossOptions options_) : options(std::move(options_)) {}

void SPOLossImpl::reset() {}

void SPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::SPOLoss(degree_weight=" << options.degree_weight() << ")";
}

LossOutput SPOLossImpl::forward(const LossOutput& align, const torch::Tensor& degree_logits,
                                const torch::Tensor& degrees) {
  return functional::spo_loss(align, degree_logits, degrees, options);
}

}  // namespace prefopt
