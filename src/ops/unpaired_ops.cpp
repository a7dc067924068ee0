// Exposes KTO as an operator (torch.ops.prefopt.kto_loss): per-example losses and rewards in input order,
// unreduced, and TRL's metrics as one float32 vector ordered by metric name. The split of the rewards into the
// desirable and undesirable subsets is left to the caller (rewards[labels]): its size depends on the labels'
// values, which an operator's output must not. Composite over the C++ code, so autograd comes from ATen.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../losses/unpaired_terms.h"
#include <prefopt/losses/unpaired.h>
#include "op_support.h"

namespace prefopt {
namespace {

using ops::metrics_vector;
using ops::or_undefined;

const ops::OpOptions<KTOLossOptions> kKTOOptions;

std::tuple<at::Tensor, at::Tensor, at::Tensor> kto_loss_op(
    const at::Tensor& policy_logps, const at::Tensor& ref_logps, const at::Tensor& labels,
    const std::optional<at::Tensor>& policy_kl_logps, const std::optional<at::Tensor>& ref_kl_logps,
    const std::optional<at::Tensor>& kl, c10::string_view loss_type, double beta, double desirable_weight,
    double undesirable_weight, bool check_finite) {
  const auto options = kKTOOptions.read(loss_type, beta, desirable_weight, undesirable_weight)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  const auto inputs = KTOLossInputs()
                          .policy_kl_logps(or_undefined(policy_kl_logps))
                          .ref_kl_logps(or_undefined(ref_kl_logps))
                          .kl(or_undefined(kl));
  const LossOutput out = detail::kto_loss_unsplit(policy_logps, ref_logps, labels, options, inputs);
  return {out.losses, out.rewards, metrics_vector(out)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(("kto_loss(Tensor policy_logps, Tensor ref_logps, Tensor labels, Tensor? policy_kl_logps=None, "
         "Tensor? ref_kl_logps=None, *, Tensor? kl=None, " + kKTOOptions.schema() +
         ", bool check_finite=True) -> (Tensor losses, Tensor rewards, Tensor metrics)")
            .c_str());
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) { m.impl("kto_loss", &kto_loss_op); }

}  // namespace prefopt
