// Exposes the DPO family as an operator (torch.ops.prefopt.dpo_loss) returning TRL's dpo_loss triple:
// (per-pair losses, chosen rewards, rejected rewards), unreduced. Composite over the C++ functional form.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "prefopt/losses/pairwise.h"

namespace prefopt {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> dpo_loss_op(
    const at::Tensor& policy_chosen_logps, const at::Tensor& policy_rejected_logps,
    const std::optional<at::Tensor>& ref_chosen_logps, const std::optional<at::Tensor>& ref_rejected_logps,
    c10::string_view loss_type, double beta, double label_smoothing, bool reference_free, bool check_finite) {
  const auto options = DPOLossOptions()
                           .loss_type(dpo_loss_type_from_string(std::string_view(loss_type.data(), loss_type.size())))
                           .beta(beta)
                           .label_smoothing(label_smoothing)
                           .reference_free(reference_free)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  auto out = functional::dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps.value_or(at::Tensor()),
                                  ref_rejected_logps.value_or(at::Tensor()), options);
  return {out.losses, out.chosen_rewards, out.rejected_rewards};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "dpo_loss(Tensor policy_chosen_logps, Tensor policy_rejected_logps, Tensor? ref_chosen_logps, "
      "Tensor? ref_rejected_logps, *, str loss_type=\"sigmoid\", float beta=0.1, float label_smoothing=0.0, "
      "bool reference_free=False, bool check_finite=True) -> (Tensor losses, Tensor chosen_rewards, "
      "Tensor rejected_rewards)");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) { m.impl("dpo_loss", &dpo_loss_op); }

}  // namespace prefopt
