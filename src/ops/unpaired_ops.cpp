// Exposes KTO as an operator (torch.ops.prefopt.kto_loss): per-example losses and rewards in input order,
// unreduced, and TRL's metrics as one float32 vector ordered by metric name. The split of the rewards into the
// desirable and undesirable subsets is left to the caller (rewards[labels]): its size depends on the labels'
// values, which an operator's output must not. Composite over the C++ code, so autograd comes from ATen.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../losses/unpaired_terms.h"
#include "prefopt/losses/unpaired.h"

namespace prefopt {
namespace {

at::Tensor or_undefined(const std::optional<at::Tensor>& t) { return t.has_value() ? *t : at::Tensor(); }

std::tuple<at::Tensor, at::Tensor, at::Tensor> kto_loss_op(
    const at::Tensor& policy_logps, const at::Tensor& ref_logps, const at::Tensor& labels,
    const std::optional<at::Tensor>& policy_kl_logps, const std::optional<at::Tensor>& ref_kl_logps,
    const std::optional<at::Tensor>& kl, c10::string_view loss_type, double beta, double desirable_weight,
    double undesirable_weight, bool check_finite) {
  const auto options = KTOLossOptions()
                           .loss_type(kto_loss_type_from_string(std::string_view(loss_type.data(), loss_type.size())))
                           .beta(beta)
                           .desirable_weight(desirable_weight)
                           .undesirable_weight(undesirable_weight)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  const auto inputs = KTOLossInputs()
                          .policy_kl_logps(or_undefined(policy_kl_logps))
                          .ref_kl_logps(or_undefined(ref_kl_logps))
                          .kl(or_undefined(kl));
  const LossOutput out = detail::kto_loss_unsplit(policy_logps, ref_logps, labels, options, inputs);
  std::vector<at::Tensor> values;
  values.reserve(out.metrics.size());
  for (const auto& entry : out.metrics) values.push_back(entry.second.reshape({1}));
  return {out.losses, out.rewards, at::cat(values)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "kto_loss(Tensor policy_logps, Tensor ref_logps, Tensor labels, Tensor? policy_kl_logps=None, "
      "Tensor? ref_kl_logps=None, *, Tensor? kl=None, str loss_type=\"kto\", float beta=0.1, "
      "float desirable_weight=1.0, float undesirable_weight=1.0, bool check_finite=True) "
      "-> (Tensor losses, Tensor rewards, Tensor metrics)");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) { m.impl("kto_loss", &kto_loss_op); }

}  // namespace prefopt
