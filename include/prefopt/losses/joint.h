// Joint preference optimisation (DOVE, LOSSES.md section 4): DPO-sigmoid over joint log-probs
// p(x, y) = log pi(x) + log pi(y | x) of instruction-response pairs whose prompts may differ, so that a
// preference between (x_c, y_c) and (x_l, y_l) can be learned. The scores come from
// prefopt::joint_sequence_logps (scoring_joint.h), which scores the prompt tokens too (all but the first).
#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "loss_output.h"
#include "options.h"

namespace prefopt {

/// The declared options of JointDPOLoss (options.h): type, name, default, meaning.
#define PREFOPT_JOINT_DPO_LOSS_OPTIONS(X)                                                                    \
  X(double, beta, 0.1, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(double, label_smoothing, 0.0, "Conservative DPO's eps in [0, 0.5] (0 = DOVE as published).")

/// Options of JointDPOLoss and functional::joint_dpo_loss.
struct JointDPOLossOptions {
  PREFOPT_JOINT_DPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf (one host sync per input).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(JointDPOLossOptions, PREFOPT_JOINT_DPO_LOSS_OPTIONS);

namespace functional {

/// DOVE's joint DPO loss `-logsig(beta ((P_c - Q_c) - (P_l - Q_l)))` per pair, P and Q the joint log-probs
/// of (prompt, response) under the policy and the reference. It is DPO-sigmoid on joint ratios: with equal
/// prompts for chosen and rejected, the prompt terms cancel (when the reference scores the same prompt)
/// and it equals DPO on completion log-probs.
///
/// - policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: [B] joint log-probs
///   (prompt and response tokens, all but the first token), one floating dtype and device; B >= 1.
/// - Returns DPO's LossOutput: rewards beta (P - Q) (detached; joint, so they include the prompt), metrics
///   rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected.
///
/// Example:
/// ```
/// auto c = prefopt::joint_sequence_logps(policy_logits_c, ids_c, mask_c);   // prompt x_c + response y_c
/// auto l = prefopt::joint_sequence_logps(policy_logits_l, ids_l, mask_l);   // prompt x_l + response y_l
/// auto out = prefopt::functional::joint_dpo_loss(c.logps, l.logps, ref_c, ref_l);
/// ```
LossOutput joint_dpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                          const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                          const JointDPOLossOptions& options = {});

}  // namespace functional

/// Module form of functional::joint_dpo_loss.
///
/// Example:
/// ```
/// prefopt::JointDPOLoss loss(prefopt::JointDPOLossOptions().beta(0.1));
/// auto out = loss(policy_chosen_joint, policy_rejected_joint, ref_chosen_joint, ref_rejected_joint);
/// ```
class JointDPOLossImpl : public torch::nn::Cloneable<JointDPOLossImpl> {
 public:
  explicit JointDPOLossImpl(JointDPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps);

  JointDPOLossOptions options;
};
TORCH_MODULE(JointDPOLoss);

}  // namespace prefopt
