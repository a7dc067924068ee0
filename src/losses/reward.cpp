// Bradley-Terry reward-model losses (LOSSES.md section 7): per-pair losses from the scalar rewards of the chosen
// and rejected responses, with an optional margin, magnitude, label smoothing and reward centring, and TRL's
// RewardTrainer metrics. The arithmetic runs on [B] tensors in float32 (float64 for float64 inputs).
#include <prefopt/losses/reward.h>

#include <cmath>
#include <limits>
#include <string>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include "reduction.h"
#include "../common/score_checks.h"

namespace prefopt {
namespace {

struct RewardTypeName {
  RewardLossType type;
  const char* name;
};

constexpr RewardTypeName kRewardTypeNames[] = {
    {RewardLossType::BradleyTerry, "bradley_terry"},
    {RewardLossType::Margin, "margin"},
    {RewardLossType::Scaled, "scaled"},
};

}  // namespace

std::string to_string(RewardLossType type) {
  for (const auto& entry : kRewardTypeNames) {
    if (entry.type == type) return entry.name;
  }
  TORCH_CHECK(false, "unknown RewardLossType ", static_cast<int>(type));
}

RewardLossType reward_loss_type_from_string(std::string_view name) {
  std::ostringstream known;
  for (const auto& entry : kRewardTypeNames) {
    if (name == entry.name) return entry.type;
    known << (&entry == kRewardTypeNames ? "" : ", ") << entry.name;
  }
  TORCH_CHECK(false, "loss_type must be one of: ", known.str(), "; got '", name, "'");
}

namespace functional {
namespace {

// A per-pair input of one loss type: required by it, rejected by the others.
void check_pair_input(const at::Tensor& t, const char* name, const char* owner, bool needed,
                      const std::string& type_name, const at::Tensor& anchor, bool floating_only) {
  if (!needed) {
    TORCH_CHECK(!t.defined(), name, " is only used by loss_type ", owner, ", got loss_type ", type_name);
    return;
  }
  TORCH_CHECK(t.defined(), name, " is required by loss_type ", type_name, " (a [B] tensor, one value per pair)");
  TORCH_CHECK(t.sizes() == anchor.sizes(), name, " must have shape [B] matching chosen_rewards ", anchor.sizes(),
              ", got ", t.sizes());
  const bool ok_dtype = floating_only ? at::isFloatingType(t.scalar_type())
                                      : (t.scalar_type() != at::kBool && !at::isComplexType(t.scalar_type()));
  TORCH_CHECK(ok_dtype, name, floating_only ? " must be floating" : " must be a real or integer tensor", ", got ",
              t.scalar_type());
  TORCH_CHECK(t.device() == anchor.device(), name, " must be on the device of chosen_rewards (", anchor.device(),
              "), got ", t.device());
}

}  // namespace

LossOutput reward_loss(const torch::Tensor& chosen_rewards, const torch::Tensor& rejected_rewards,
                       const RewardLossOptions& options, const RewardLossInputs& inputs) {
  const RewardLossType type = options.loss_type();
  const std::string type_name = to_string(type);
  detail::check_option_range(options.label_smoothing(), "label_smoothing", 0.0, 0.5, /*low_open=*/false);
  TORCH_CHECK(std::isfinite(options.center_rewards_coefficient()) && options.center_rewards_coefficient() >= 0.0,
              "center_rewards_coefficient must be finite and >= 0, got ", options.center_rewards_coefficient());
  detail::check_batch_scores(chosen_rewards, "chosen_rewards");
  detail::check_same_batch(rejected_rewards, "rejected_rewards", chosen_rewards, "chosen_rewards");
  check_pair_input(inputs.margin(), "margin", "margin", type == RewardLossType::Margin, type_name, chosen_rewards,
                   /*floating_only=*/true);
  check_pair_input(inputs.magnitude(), "magnitude", "scaled", type == RewardLossType::Scaled, type_name,
                   chosen_rewards, /*floating_only=*/false);
  if (options.check_finite()) {
    detail::check_finite(chosen_rewards, "chosen_rewards");
    detail::check_finite(rejected_rewards, "rejected_rewards");
    if (inputs.margin().defined()) detail::check_finite(inputs.margin(), "margin");
    if (inputs.magnitude().defined()) {
      const at::Tensor w = inputs.magnitude().to(at::kDouble);
      detail::check_finite(w, "magnitude");
      TORCH_CHECK(!detail::any_set(w.lt(0), "magnitude must be >= 0, got a negative value"),
                  "magnitude must be >= 0, got a negative value");
    }
  }

  const auto in_dtype = chosen_rewards.scalar_type();
  const auto acc = at::toOpMathType(in_dtype);
  const at::Tensor rc = chosen_rewards.to(acc);
  const at::Tensor rr = rejected_rewards.to(acc);
  const at::Tensor d = rc - rr;
  const at::Tensor z = type == RewardLossType::Margin ? d - inputs.margin().detach().to(acc) : d;
  const double eps = options.label_smoothing();
  at::Tensor losses = -at::log_sigmoid(z);
  if (eps > 0.0) losses = (1.0 - eps) * losses - eps * at::log_sigmoid(-z);
  if (type == RewardLossType::Scaled) losses = inputs.magnitude().detach().to(acc) * losses;
  const double c = options.center_rewards_coefficient();
  if (c > 0.0) losses = losses + c * (rc + rr).pow(2);

  LossOutput out;
  out.losses = losses.to(in_dtype);
  out.loss = detail::reduce(out.losses, options.reduction());
  out.chosen_rewards = chosen_rewards.detach();
  out.rejected_rewards = rejected_rewards.detach();
  const at::Tensor all = at::cat({rc, rr}).detach();
  out.metrics["accuracy"] = rc.detach().gt(rr.detach()).to(at::kFloat).mean();
  out.metrics["margin"] = d.detach().mean().to(at::kFloat);
  out.metrics["min_reward"] = all.min().to(at::kFloat);
  out.metrics["mean_reward"] = all.mean().to(at::kFloat);
  out.metrics["max_reward"] = all.max().to(at::kFloat);
  return out;
}

}  // namespace functional

RewardLossImpl::RewardLossImpl(RewardLossOptions options_) : options(std::move(options_)) { reset(); }
void RewardLossImpl::reset() {}
void RewardLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::RewardLoss(loss_type=" << to_string(options.loss_type())
         << ", label_smoothing=" << options.label_smoothing()
         << ", center_rewards_coefficient=" << options.center_rewards_coefficient() << ")";
}
LossOutput RewardLossImpl::forward(const torch::Tensor& chosen_rewards, const torch::Tensor& rejected_rewards,
                                   const RewardLossInputs& inputs) {
  return functional::reward_loss(chosen_rewards, rejected_rewards, options, inputs);
}

}  // namespace prefopt
