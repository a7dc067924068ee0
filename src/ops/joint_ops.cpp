// Exposes DOVE's joint DPO loss and the joint scoring recipes as operators: torch.ops.prefopt.joint_dpo_loss
// (per-pair losses, chosen rewards, rejected rewards; unreduced), .joint_labels, .completion_labels,
// .joint_sequence_logps and .step_means. Composite over the C++ functions.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/losses/joint.h>
#include <prefopt/scoring_joint.h>
#include "op_support.h"

namespace prefopt {
namespace {

const auto& opt = ops::or_undefined;

const ops::OpOptions<JointDPOLossOptions> kJointDPO;

std::tuple<at::Tensor, at::Tensor, at::Tensor> joint_dpo_loss_op(const at::Tensor& policy_chosen_logps,
                                                                 const at::Tensor& policy_rejected_logps,
                                                                 const at::Tensor& ref_chosen_logps,
                                                                 const at::Tensor& ref_rejected_logps, double beta,
                                                                 double label_smoothing, bool check_finite) {
  const auto options = kJointDPO.read(beta, label_smoothing).check_finite(check_finite).reduction(torch::kNone);
  auto out = functional::joint_dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                                        ref_rejected_logps, options);
  return {out.losses, out.chosen_rewards, out.rejected_rewards};
}

at::Tensor joint_labels_op(const at::Tensor& input_ids, const std::optional<at::Tensor>& attention_mask,
                           int64_t ignore_index) {
  return joint_labels(input_ids, opt(attention_mask), ignore_index);
}

at::Tensor completion_labels_op(const at::Tensor& input_ids, const std::optional<at::Tensor>& attention_mask,
                                const at::Tensor& prompt_lengths, int64_t ignore_index) {
  return completion_labels(input_ids, opt(attention_mask), prompt_lengths, ignore_index);
}

std::tuple<at::Tensor, at::Tensor> joint_sequence_logps_op(const at::Tensor& logits, const at::Tensor& input_ids,
                                                           const std::optional<at::Tensor>& attention_mask,
                                                           bool average, double temperature) {
  auto out = joint_sequence_logps(logits, input_ids, opt(attention_mask),
                                  SequenceLogpsOptions().average(average).temperature(temperature));
  return {out.logps, out.token_logps};
}

std::tuple<at::Tensor, at::Tensor> step_means_op(const at::Tensor& values, const at::Tensor& step_ids,
                                                 int64_t num_steps, bool check_inputs) {
  auto out = step_means(values, step_ids, num_steps, check_inputs);
  return {out.means, out.mask};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(("joint_dpo_loss(Tensor policy_chosen_logps, Tensor policy_rejected_logps, Tensor ref_chosen_logps, "
         "Tensor ref_rejected_logps, *, " + kJointDPO.schema() +
         ", bool check_finite=True) -> (Tensor losses, Tensor chosen_rewards, Tensor rejected_rewards)")
            .c_str());
  m.def("joint_labels(Tensor input_ids, Tensor? attention_mask=None, *, int ignore_index=-100) -> Tensor");
  m.def(
      "completion_labels(Tensor input_ids, Tensor? attention_mask, Tensor prompt_lengths, *, int ignore_index=-100) "
      "-> Tensor");
  m.def(
      "joint_sequence_logps(Tensor logits, Tensor input_ids, Tensor? attention_mask=None, *, bool average=False, "
      "float temperature=1.0) -> (Tensor logps, Tensor token_logps)");
  m.def("step_means(Tensor values, Tensor step_ids, int num_steps, *, bool check_inputs=True) -> (Tensor means, Tensor mask)");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("joint_dpo_loss", &joint_dpo_loss_op);
  m.impl("joint_labels", &joint_labels_op);
  m.impl("completion_labels", &completion_labels_op);
  m.impl("joint_sequence_logps", &joint_sequence_logps_op);
  m.impl("step_means", &step_means_op);
}

}  // namespace prefopt
