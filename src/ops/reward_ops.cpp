// Exposes the reward-model losses as an operator (torch.ops.prefopt.reward_loss): unreduced per-pair losses and
// TRL's RewardTrainer metrics as one float32 vector ordered by metric name. Composite over the C++ functional
// form, so autograd comes from ATen.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "prefopt/losses/reward.h"

namespace prefopt {
namespace {

at::Tensor or_undefined(const std::optional<at::Tensor>& t) { return t.has_value() ? *t : at::Tensor(); }

std::tuple<at::Tensor, at::Tensor> reward_loss_op(const at::Tensor& chosen_rewards, const at::Tensor& rejected_rewards,
                                                  const std::optional<at::Tensor>& margin,
                                                  const std::optional<at::Tensor>& magnitude,
                                                  c10::string_view loss_type, double label_smoothing,
                                                  double center_rewards_coefficient, bool check_finite) {
  const auto options =
      RewardLossOptions()
          .loss_type(reward_loss_type_from_string(std::string_view(loss_type.data(), loss_type.size())))
          .label_smoothing(label_smoothing)
          .center_rewards_coefficient(center_rewards_coefficient)
          .check_finite(check_finite)
          .reduction(torch::kNone);
  const auto inputs = RewardLossInputs().margin(or_undefined(margin)).magnitude(or_undefined(magnitude));
  const LossOutput out = functional::reward_loss(chosen_rewards, rejected_rewards, options, inputs);
  std::vector<at::Tensor> values;
  values.reserve(out.metrics.size());
  for (const auto& entry : out.metrics) values.push_back(entry.second.reshape({1}));
  return {out.losses, at::cat(values)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "reward_loss(Tensor chosen_rewards, Tensor rejected_rewards, *, Tensor? margin=None, Tensor? magnitude=None, "
      "str loss_type=\"bradley_terry\", float label_smoothing=0.0, float center_rewards_coefficient=0.0, "
      "bool check_finite=True) -> (Tensor losses, Tensor metrics)");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) { m.impl("reward_loss", &reward_loss_op); }

}  // namespace prefopt
