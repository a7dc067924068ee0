// TDPO (LOSSES.md section 3): the DPO margin with the sequential KL margin, on [B] tensors in float32
// (float64 for float64 inputs). The per-token KL itself is scoring's job; here it is a summed [B] score.
#include <prefopt/losses/token_level.h>

#include <limits>

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include "reduction.h"
#include "../common/score_checks.h"

namespace prefopt {

std::string to_string(TDPOVariant variant) { return variant == TDPOVariant::TDPO1 ? "tdpo1" : "tdpo2"; }

TDPOVariant tdpo_variant_from_string(std::string_view name) {
  if (name == "tdpo1") return TDPOVariant::TDPO1;
  if (name == "tdpo2") return TDPOVariant::TDPO2;
  TORCH_CHECK(false, "variant must be one of: tdpo1, tdpo2; got '", name, "'");
}

namespace functional {

LossOutput tdpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                     const torch::Tensor& chosen_kl, const torch::Tensor& rejected_kl,
                     const TDPOLossOptions& options) {
  const char* anchor = "policy_chosen_logps";
  detail::check_batch_scores(policy_chosen_logps, anchor);
  detail::check_same_batch(policy_rejected_logps, "policy_rejected_logps", policy_chosen_logps, anchor);
  detail::check_same_batch(ref_chosen_logps, "ref_chosen_logps", policy_chosen_logps, anchor);
  detail::check_same_batch(ref_rejected_logps, "ref_rejected_logps", policy_chosen_logps, anchor);
  detail::check_same_batch(chosen_kl, "chosen_kl", policy_chosen_logps, anchor);
  detail::check_same_batch(rejected_kl, "rejected_kl", policy_chosen_logps, anchor);
  const double max = std::numeric_limits<double>::max();
  detail::check_option_range(options.beta(), "beta", 0.0, max, /*low_open=*/true);
  detail::check_option_range(options.alpha(), "alpha", 0.0, max, /*low_open=*/false);
  if (options.check_finite()) {
    detail::check_finite(policy_chosen_logps, "policy_chosen_logps");
    detail::check_finite(policy_rejected_logps, "policy_rejected_logps");
    detail::check_finite(ref_chosen_logps, "ref_chosen_logps");
    detail::check_finite(ref_rejected_logps, "ref_rejected_logps");
    detail::check_finite(chosen_kl, "chosen_kl");
    detail::check_finite(rejected_kl, "rejected_kl");
  }
  const auto in_dtype = policy_chosen_logps.scalar_type();
  const auto acc = at::toOpMathType(in_dtype);
  const double beta = options.beta();

  const at::Tensor pc = policy_chosen_logps.to(acc);
  const at::Tensor pr = policy_rejected_logps.to(acc);
  const at::Tensor h_c = pc - ref_chosen_logps.to(acc);
  const at::Tensor h_r = pr - ref_rejected_logps.to(acc);
  const at::Tensor k_c = chosen_kl.to(acc);
  const at::Tensor k_r = rejected_kl.to(acc);

  at::Tensor z;
  if (options.variant() == TDPOVariant::TDPO1) {
    z = (h_c - h_r) - (k_r - k_c);
  } else {
    z = (h_c - h_r) - options.alpha() * (k_r - k_c.detach());
  }

  LossOutput out;
  out.losses = (-at::log_sigmoid(beta * z)).to(in_dtype);
  out.loss = detail::reduce(out.losses, options.reduction());

  const at::Tensor cr = (beta * (h_c + k_c)).detach();
  const at::Tensor rr = (beta * (h_r + k_r)).detach();
  const at::Tensor crf = cr.to(at::kFloat), rrf = rr.to(at::kFloat);
  const at::Tensor kcf = k_c.detach().to(at::kFloat), krf = k_r.detach().to(at::kFloat);
  out.metrics["rewards/chosen"] = crf.mean();
  out.metrics["rewards/rejected"] = rrf.mean();
  out.metrics["rewards/accuracies"] = crf.gt(rrf).to(at::kFloat).mean();
  out.metrics["rewards/margins"] = (crf - rrf).mean();
  out.metrics["kl/chosen"] = kcf.mean();
  out.metrics["kl/rejected"] = krf.mean();
  out.metrics["kl/margin"] = (kcf - krf).mean();
  out.metrics["logps/chosen"] = pc.detach().to(at::kFloat).mean();
  out.metrics["logps/rejected"] = pr.detach().to(at::kFloat).mean();
  out.chosen_rewards = cr.to(in_dtype);
  out.rejected_rewards = rr.to(in_dtype);
  return out;
}

}  // namespace functional

TDPOLossImpl::TDPOLossImpl(TDPOLossOptions options_) : options(std::move(options_)) {}

void TDPOLossImpl::reset() {}

void TDPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::TDPOLoss(variant=" << to_string(options.variant()) << ", beta=" << options.beta()
         << ", alpha=" << options.alpha() << ")";
}

LossOutput TDPOLossImpl::forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                                 const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                                 const torch::Tensor& chosen_kl, const torch::Tensor& rejected_kl) {
  return functional::tdpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                               chosen_kl, rejected_kl, options);
}

}  // namespace prefopt
