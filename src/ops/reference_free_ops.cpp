// Exposes SimPO, CPO and ORPO as operators (torch.ops.prefopt.simpo_loss / cpo_loss / orpo_loss). Each returns
// the unreduced per-pair losses, the detached chosen and rejected rewards, and the loss's TRL metrics as one
// float32 vector ordered by metric name (the Python wrappers pair it with the names). Composite over the C++
// functional forms, so autograd comes from ATen.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/losses/reference_free.h>
#include "op_support.h"

namespace prefopt {
namespace {

using ops::metrics_vector;
using ops::or_undefined;
using PairResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

PairResult to_result(const LossOutput& out) {
  return {out.losses, out.chosen_rewards, out.rejected_rewards, metrics_vector(out)};
}

const ops::OpOptions<SimPOLossOptions> kSimPO;
const ops::OpOptions<CPOLossOptions> kCPO;
const ops::OpOptions<ORPOLossOptions> kORPO;

PairResult simpo_loss_op(const at::Tensor& policy_chosen_logps, const at::Tensor& policy_rejected_logps,
                         const at::Tensor& chosen_lengths, const at::Tensor& rejected_lengths, double beta,
                         double gamma, double label_smoothing, bool check_finite) {
  const auto options =
      kSimPO.read(beta, gamma, label_smoothing).check_finite(check_finite).reduction(torch::kNone);
  return to_result(
      functional::simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, options));
}

PairResult cpo_loss_op(const at::Tensor& policy_chosen_logps, const at::Tensor& policy_rejected_logps,
                       const std::optional<at::Tensor>& chosen_lengths,
                       const std::optional<at::Tensor>& rejected_lengths, const std::optional<at::Tensor>& chosen_nll,
                       c10::string_view loss_type, double beta, double label_smoothing, double cpo_alpha,
                       double simpo_gamma, double alpha, bool check_finite) {
  const auto options = kCPO.read(loss_type, beta, label_smoothing, cpo_alpha, simpo_gamma, alpha)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  const auto inputs = CPOLossInputs()
                          .chosen_lengths(or_undefined(chosen_lengths))
                          .rejected_lengths(or_undefined(rejected_lengths))
                          .chosen_nll(or_undefined(chosen_nll));
  return to_result(functional::cpo_loss(policy_chosen_logps, policy_rejected_logps, options, inputs));
}

PairResult orpo_loss_op(const at::Tensor& policy_chosen_logps, const at::Tensor& policy_rejected_logps,
                        const at::Tensor& chosen_lengths, const at::Tensor& rejected_lengths,
                        const at::Tensor& chosen_nll, double beta, bool check_finite) {
  const auto options = kORPO.read(beta).check_finite(check_finite).reduction(torch::kNone);
  return to_result(functional::orpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths,
                                         chosen_nll, options));
}

const char* const kPairReturns =
    ") -> (Tensor losses, Tensor chosen_rewards, Tensor rejected_rewards, Tensor metrics)";

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(("simpo_loss(Tensor policy_chosen_logps, Tensor policy_rejected_logps, Tensor chosen_lengths, "
         "Tensor rejected_lengths, *, " + kSimPO.schema() + ", bool check_finite=True" + kPairReturns)
            .c_str());
  m.def(("cpo_loss(Tensor policy_chosen_logps, Tensor policy_rejected_logps, *, Tensor? chosen_lengths=None, "
         "Tensor? rejected_lengths=None, Tensor? chosen_nll=None, " + kCPO.schema() + ", bool check_finite=True" +
         kPairReturns)
            .c_str());
  m.def(("orpo_loss(Tensor policy_chosen_logps, Tensor policy_rejected_logps, Tensor chosen_lengths, "
         "Tensor rejected_lengths, Tensor chosen_nll, *, " + kORPO.schema() + ", bool check_finite=True" +
         kPairReturns)
            .c_str());
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("simpo_loss", &simpo_loss_op);
  m.impl("cpo_loss", &cpo_loss_op);
  m.impl("orpo_loss", &orpo_loss_op);
}

}  // namespace prefopt
