// DOVE's joint DPO loss (LOSSES.md section 4): DPO-sigmoid on joint log-prob ratios. The math is the DPO
// family's own (functional::dpo_loss with loss type sigmoid), so it is written once.
#include <prefopt/losses/joint.h>

#include <prefopt/losses/pairwise.h>

namespace prefopt {
namespace functional {

LossOutput joint_dpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                          const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                          const JointDPOLossOptions& options) {
  return dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                  DPOLossOptions()
                      .loss_type(kSigmoid)
                      .beta(options.beta())
                      .label_smoothing(options.label_smoothing())
                      .reduction(options.reduction())
                      .check_finite(options.check_finite()));
}

}  // namespace functional

JointDPOLossImpl::JointDPOLossImpl(JointDPOLossOptions options_) : options(std::move(options_)) {}

void JointDPOLossImpl::reset() {}

void JointDPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::JointDPOLoss(beta=" << options.beta() << ", label_smoothing=" << options.label_smoothing() << ")";
}

LossOutput JointDPOLossImpl::forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                                     const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps) {
  return functional::joint_dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                                    options);
}

}  // namespace prefopt
