// Pairwise preference losses with a reference model (the DPO family): per-pair losses, implicit rewards and
// TRL's metrics from summed sequence log-probs. Knows nothing of tokens or vocabularies; the scores may
// come from a language model, a diffusion model or anything else that yields a log-likelihood per sample.
#pragma once

#include <string>
#include <string_view>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "loss_output.h"

namespace prefopt {

/// The per-pair loss of DPOLoss. See docs/losses.md for each formula and its source.
enum class DPOLossType {
  Sigmoid,  ///< DPO: -logsigmoid(beta * margin); with label_smoothing > 0, conservative DPO.
};
inline constexpr DPOLossType kSigmoid = DPOLossType::Sigmoid;

/// TRL's name of a loss type ("sigmoid", ...).
std::string to_string(DPOLossType type);
/// Parses TRL's name; an unknown name raises an error listing the known ones.
DPOLossType dpo_loss_type_from_string(std::string_view name);

/// Options of DPOLoss and functional::dpo_loss.
struct DPOLossOptions {
  TORCH_ARG(DPOLossType, loss_type) = kSigmoid;
  /// Temperature of the implicit reward, > 0 and finite.
  TORCH_ARG(double, beta) = 0.1;
  /// Conservative DPO's eps in [0, 0.5]: the probability that a preference label is flipped.
  TORCH_ARG(double, label_smoothing) = 0.0;
  /// Ignore the reference model: the reference log-probs are taken as 0 (and may be undefined tensors).
  TORCH_ARG(bool, reference_free) = false;
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf (one reduction and a host sync on [B] values).
  /// With false, NaN/Inf propagate into the losses of the affected pairs and into the reduced loss.
  TORCH_ARG(bool, check_finite) = true;
};

namespace functional {

/// DPO-family loss from summed sequence log-probs.
///
/// - policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: [B], one floating
///   dtype (float32, bfloat16, float16, float64), one device; B >= 1. The reference ones may be undefined
///   when reference_free is set.
/// - Computed in float32 (float64 for float64 input); `losses` and `loss` come back in the input dtype.
/// - chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps), rejected likewise: detached.
/// - metrics (detached, float32): rewards/chosen, rewards/rejected, rewards/accuracies (strict >),
///   rewards/margins, logps/chosen, logps/rejected.
///
/// Example:
/// ```
/// namespace F = prefopt::functional;
/// auto out = F::dpo_loss(pc, pr, rc, rr, prefopt::DPOLossOptions().beta(0.1).label_smoothing(0.1));
/// out.loss.backward();
/// double acc = out.metrics.at("rewards/accuracies").item<double>();
/// ```
LossOutput dpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                    const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                    const DPOLossOptions& options = {});

}  // namespace functional

/// Module form of functional::dpo_loss; holds the options and delegates to the functional form.
///
/// Example:
/// ```
/// prefopt::DPOLoss loss(prefopt::DPOLossOptions().loss_type(prefopt::kSigmoid).beta(0.1));
/// auto out = loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected);
/// ```
class DPOLossImpl : public torch::nn::Cloneable<DPOLossImpl> {
 public:
  explicit DPOLossImpl(DPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps);

  DPOLossOptions options;
};
TORCH_MODULE(DPOLoss);

}  // namespace prefopt
