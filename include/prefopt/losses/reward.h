// Reward-model losses (LOSSES.md section 7): Bradley-Terry on the scalar rewards a reward model gives the chosen
// and rejected responses, with Llama 2's margin, HelpSteer2-Preference's magnitude scaling, label smoothing and
// TRL's reward centring. The loss takes [B] rewards; it knows nothing of the model that produced them.
#pragma once

#include <string>
#include <string_view>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "loss_output.h"
#include "options.h"

namespace prefopt {

/// The per-pair loss of RewardLoss. With d = r_c - r_r and eps = label_smoothing, `S(z) = -(1-eps) logsig(z) -
/// eps logsig(-z)`:
enum class RewardLossType {
  BradleyTerry,  ///< "bradley_terry": `S(d)`.
  Margin,        ///< "margin": `S(d - m)`, m a per-pair margin (Llama 2; TRL's `margin` column). Needs margin.
  Scaled,        ///< "scaled": `w S(d)`, w a per-pair magnitude (HelpSteer2-Preference, 1..3). Needs magnitude.
};
inline constexpr RewardLossType kBradleyTerry = RewardLossType::BradleyTerry;
inline constexpr RewardLossType kMarginBT = RewardLossType::Margin;
inline constexpr RewardLossType kScaledBT = RewardLossType::Scaled;

/// "bradley_terry", "margin", "scaled" and the parser; an unknown name raises an error listing the known ones.
std::string to_string(RewardLossType type);
RewardLossType reward_loss_type_from_string(std::string_view name);

PREFOPT_OPTION_CHOICES(RewardLossType, kBradleyTerry, kMarginBT, kScaledBT);

/// The declared options of RewardLoss (options.h): type, name, default, meaning.
#define PREFOPT_REWARD_LOSS_OPTIONS(X)                                                                       \
  X(RewardLossType, loss_type, kBradleyTerry, "bradley_terry, margin (needs per-pair margins) or scaled "   \
    "(needs per-pair magnitudes).")                                                                          \
  X(double, label_smoothing, 0.0, "Probability that a preference label is flipped, in [0, 0.5].")           \
  X(double, center_rewards_coefficient, 0.0,                                                                 \
    "TRL's center_rewards_coefficient: adds c (r_c + r_r)^2 to every pair's loss; 0 (TRL's None) = off.")

/// Options of RewardLoss and functional::reward_loss.
struct RewardLossOptions {
  PREFOPT_REWARD_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf, or a magnitude is negative (one host sync per input).
  /// With false, NaN/Inf propagate into the affected pairs' losses and into the reduced loss.
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(RewardLossOptions, PREFOPT_REWARD_LOSS_OPTIONS);

/// Per-pair inputs that a loss type needs; each is an error when its loss type is not selected (never ignored).
struct RewardLossInputs {
  /// [B] floating margins m of loss_type margin, same device as the rewards. Not differentiated.
  TORCH_ARG(torch::Tensor, margin);
  /// [B] magnitudes w >= 0 of loss_type scaled (real or integer), same device. Not differentiated.
  TORCH_ARG(torch::Tensor, magnitude);
};

namespace functional {

/// Bradley-Terry reward-model loss per pair; the batch mean with loss_type bradley_terry or margin is TRL's
/// RewardTrainer.compute_loss.
///
/// - chosen_rewards, rejected_rewards: [B] scalar rewards r_c, r_r of the reward model; one floating dtype
///   (float32, bfloat16, float16, float64) and device; B >= 1. Differentiable.
/// - Per pair (see RewardLossType): bradley_terry `S(d)`, margin `S(d - m)`, scaled `w S(d)`, plus
///   `center_rewards_coefficient (r_c + r_r)^2`.
/// - Computed in float32 (float64 for float64 input); `losses` and `loss` come back in the input dtype.
/// - LossOutput::chosen_rewards / rejected_rewards: the inputs, detached.
/// - metrics (detached, float32), TRL's RewardTrainer names: accuracy (mean of 1[r_c > r_r], strict), margin
///   (mean of r_c - r_r, without the margin input), min_reward, mean_reward, max_reward (over all 2B rewards).
///
/// Example:
/// ```
/// auto out = prefopt::functional::reward_loss(r_chosen, r_rejected,
///                                             prefopt::RewardLossOptions().loss_type(prefopt::kMarginBT),
///                                             prefopt::RewardLossInputs().margin(margins));
/// out.loss.backward();
/// ```
LossOutput reward_loss(const torch::Tensor& chosen_rewards, const torch::Tensor& rejected_rewards,
                       const RewardLossOptions& options = {}, const RewardLossInputs& inputs = {});

}  // namespace functional

/// Module form of functional::reward_loss.
///
/// Example:
/// ```
/// prefopt::RewardLoss loss(prefopt::RewardLossOptions().label_smoothing(0.05));
/// auto out = loss(r_chosen, r_rejected);
/// ```
class RewardLossImpl : public torch::nn::Cloneable<RewardLossImpl> {
 public:
  explicit RewardLossImpl(RewardLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& chosen_rewards, const torch::Tensor& rejected_rewards,
                     const RewardLossInputs& inputs = {});

  RewardLossOptions options;
};
TORCH_MODULE(RewardLoss);

}  // namespace prefopt
