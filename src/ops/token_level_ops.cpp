// Exposes TDPO as an operator (torch.ops.prefopt.tdpo_loss) returning (per-pair losses, chosen rewards,
// rejected rewards), unreduced, as the official tdpo_loss does. Composite over the C++ functional form.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/losses/token_level.h>
#include "op_support.h"

namespace prefopt {
namespace {

const ops::OpOptions<TDPOLossOptions> kTDPO;

std::tuple<at::Tensor, at::Tensor, at::Tensor> tdpo_loss_op(
    const at::Tensor& policy_chosen_logps, const at::Tensor& policy_rejected_logps, const at::Tensor& ref_chosen_logps,
    const at::Tensor& ref_rejected_logps, const at::Tensor& chosen_kl, const at::Tensor& rejected_kl,
    c10::string_view variant, double beta, double alpha, bool check_finite) {
  const auto options = kTDPO.read(variant, beta, alpha).check_finite(check_finite).reduction(torch::kNone);
  auto out = functional::tdpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                                   chosen_kl, rejected_kl, options);
  return {out.losses, out.chosen_rewards, out.rejected_rewards};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(("tdpo_loss(Tensor policy_chosen_logps, Tensor policy_rejected_logps, Tensor ref_chosen_logps, "
         "Tensor ref_rejected_logps, Tensor chosen_kl, Tensor rejected_kl, *, " + kTDPO.schema() +
         ", bool check_finite=True) -> (Tensor losses, Tensor chosen_rewards, Tensor rejected_rewards)")
            .c_str());
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) { m.impl("tdpo_loss", &tdpo_loss_op); }

}  // namespace prefopt
