// Exposes the reward-model losses as an operator (torch.ops.prefopt.reward_loss): unreduced per-pair losses and
// TRL's RewardTrainer metrics as one float32 vector ordered by metric name. Composite over the C++ functional
// form, so autograd comes from ATen.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/losses/reward.h>
#include "op_support.h"

namespace prefopt {
namespace {

using ops::or_undefined;

const ops::OpOptions<RewardLossOptions> kReward;

std::tuple<at::Tensor, at::Tensor> reward_loss_op(const at::Tensor& chosen_rewards, const at::Tensor& rejected_rewards,
                                                  const std::optional<at::Tensor>& margin,
                                                  const std::optional<at::Tensor>& magnitude,
                                                  c10::string_view loss_type, double label_smoothing,
                                                  double center_rewards_coefficient, bool check_finite) {
  const auto options = kReward.read(loss_type, label_smoothing, center_rewards_coefficient)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  const auto inputs = RewardLossInputs().margin(or_undefined(margin)).magnitude(or_undefined(magnitude));
  const LossOutput out = functional::reward_loss(chosen_rewards, rejected_rewards, options, inputs);
  return {out.losses, ops::metrics_vector(out)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(("reward_loss(Tensor chosen_rewards, Tensor rejected_rewards, *, Tensor? margin=None, "
         "Tensor? magnitude=None, " + kReward.schema() + ", bool check_finite=True) -> (Tensor losses, Tensor metrics)")
            .c_str());
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) { m.impl("reward_loss", &reward_loss_op); }

}  // namespace prefopt
