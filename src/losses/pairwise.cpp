// The DPO family's per-pair losses, rewards and TRL metrics from summed sequence log-probs (LOSSES.md
// section 1). The arithmetic runs on [B] tensors in float32 (float64 for float64 inputs): never on tokens.
#include "prefopt/losses/pairwise.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include "reduction.h"
#include "score_checks.h"

namespace prefopt {

std::string to_string(DPOLossType type) {
  switch (type) {
    case DPOLossType::Sigmoid:
      return "sigmoid";
  }
  TORCH_CHECK(false, "unknown DPOLossType ", static_cast<int>(type));
}

DPOLossType dpo_loss_type_from_string(std::string_view name) {
  if (name == "sigmoid") return DPOLossType::Sigmoid;
  TORCH_CHECK(false, "loss_type must be one of: sigmoid; got '", name, "'");
}

namespace functional {
namespace {

void check_dpo_inputs(const at::Tensor& pc, const at::Tensor& pr, const at::Tensor& rc, const at::Tensor& rr,
                      const DPOLossOptions& options) {
  detail::check_batch_scores(pc, "policy_chosen_logps");
  detail::check_same_batch(pr, "policy_rejected_logps", pc, "policy_chosen_logps");
  if (!options.reference_free()) {
    detail::check_same_batch(rc, "ref_chosen_logps", pc, "policy_chosen_logps");
    detail::check_same_batch(rr, "ref_rejected_logps", pc, "policy_chosen_logps");
  }
  detail::check_option_range(options.beta(), "beta", 0.0, std::numeric_limits<double>::max(), /*low_open=*/true);
  detail::check_option_range(options.label_smoothing(), "label_smoothing", 0.0, 0.5, /*low_open=*/false);
  if (options.check_finite()) {
    detail::check_finite(pc, "policy_chosen_logps");
    detail::check_finite(pr, "policy_rejected_logps");
    if (!options.reference_free()) {
      detail::check_finite(rc, "ref_chosen_logps");
      detail::check_finite(rr, "ref_rejected_logps");
    }
  }
}

// -(1 - eps) logsig(z) - eps logsig(-z): DPO at eps = 0, conservative DPO above.
at::Tensor smoothed_sigmoid_loss(const at::Tensor& z, double eps) {
  at::Tensor loss = -at::log_sigmoid(z);
  if (eps > 0.0) loss = (1.0 - eps) * loss - eps * at::log_sigmoid(-z);
  return loss;
}

}  // namespace

LossOutput dpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                    const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                    const DPOLossOptions& options) {
  check_dpo_inputs(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, options);
  const auto in_dtype = policy_chosen_logps.scalar_type();
  const auto acc = at::toOpMathType(in_dtype);
  const double beta = options.beta();

  const at::Tensor pc = policy_chosen_logps.to(acc);
  const at::Tensor pr = policy_rejected_logps.to(acc);
  const at::Tensor h_c = options.reference_free() ? pc : pc - ref_chosen_logps.to(acc);
  const at::Tensor h_r = options.reference_free() ? pr : pr - ref_rejected_logps.to(acc);

  at::Tensor losses;
  switch (options.loss_type()) {
    case DPOLossType::Sigmoid:
      losses = smoothed_sigmoid_loss(beta * (h_c - h_r), options.label_smoothing());
      break;
  }

  LossOutput out;
  out.losses = losses.to(in_dtype);
  out.loss = detail::reduce(out.losses, options.reduction());
  out.chosen_rewards = (beta * h_c).detach();
  out.rejected_rewards = (beta * h_r).detach();

  const at::Tensor cr = out.chosen_rewards.to(at::kFloat);
  const at::Tensor rr = out.rejected_rewards.to(at::kFloat);
  out.metrics["rewards/chosen"] = cr.mean();
  out.metrics["rewards/rejected"] = rr.mean();
  out.metrics["rewards/accuracies"] = cr.gt(rr).to(at::kFloat).mean();
  out.metrics["rewards/margins"] = (cr - rr).mean();
  out.metrics["logps/chosen"] = pc.detach().to(at::kFloat).mean();
  out.metrics["logps/rejected"] = pr.detach().to(at::kFloat).mean();
  out.chosen_rewards = out.chosen_rewards.to(in_dtype);
  out.rejected_rewards = out.rejected_rewards.to(in_dtype);
  return out;
}

}  // namespace functional

DPOLossImpl::DPOLossImpl(DPOLossOptions options_) : options(std::move(options_)) { reset(); }

void DPOLossImpl::reset() {}

void DPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::DPOLoss(loss_type=" << to_string(options.loss_type()) << ", beta=" << options.beta()
         << ", label_smoothing=" << options.label_smoothing() << ")";
}

LossOutput DPOLossImpl::forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                                const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps) {
  return functional::dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                              options);
}

}  // namespace prefopt
