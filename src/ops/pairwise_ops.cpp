// Exposes the DPO family as operators: torch.ops.prefopt.dpo_loss returns TRL's dpo_loss triple (per-pair
// losses, chosen rewards, rejected rewards), unreduced; wpo_pair_weights, ld_dpo_logps and mean_token_nll
// give the inputs some options need. Composite over the C++ functions, so autograd comes from ATen.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/losses/pairwise.h>
#include <prefopt/sequence_reductions.h>
#include "op_support.h"

namespace prefopt {
namespace {

using ops::or_undefined;
using ops::view;

// bco_running_mean is the state tensor pair here, not the declared bool: giving the state turns it on.
const ops::OpOptions<DPOLossOptions> kDPO({"bco_running_mean"});

std::tuple<at::Tensor, at::Tensor, at::Tensor> dpo_loss_op(
    const at::Tensor& policy_chosen_logps, const at::Tensor& policy_rejected_logps,
    const std::optional<at::Tensor>& ref_chosen_logps, const std::optional<at::Tensor>& ref_rejected_logps,
    c10::string_view loss_type, double beta, double label_smoothing, c10::string_view f_divergence,
    double alpha_divergence_coef, double discopop_tau, double rpo_alpha, bool reference_free,
    std::optional<std::vector<c10::string_view>> loss_types, std::optional<c10::ArrayRef<double>> loss_weights,
    const std::optional<at::Tensor>& chosen_lengths, const std::optional<at::Tensor>& rejected_lengths,
    const std::optional<at::Tensor>& chosen_nll, const std::optional<at::Tensor>& weights,
    const std::optional<at::Tensor>& bco_running_mean, const std::optional<at::Tensor>& bco_running_count,
    bool check_finite) {
  std::vector<DPOLossType> types;
  if (loss_types.has_value()) {
    for (const auto& name : *loss_types) types.push_back(dpo_loss_type_from_string(view(name)));
    TORCH_CHECK(!types.empty(), "loss_types must name at least one loss type, got an empty list");
  }
  TORCH_CHECK(bco_running_mean.has_value() == bco_running_count.has_value(),
              "bco_running_mean and bco_running_count must be given together");
  auto options = kDPO.read(loss_type, beta, label_smoothing, f_divergence, alpha_divergence_coef, discopop_tau,
                           rpo_alpha, reference_free)
                     .loss_types(types)
                     .bco_running_mean(bco_running_mean.has_value())
                     .check_finite(check_finite)
                     .reduction(torch::kNone);
  if (loss_weights.has_value()) options.loss_weights(loss_weights->vec());
  const auto inputs = DPOLossInputs()
                          .chosen_lengths(or_undefined(chosen_lengths))
                          .rejected_lengths(or_undefined(rejected_lengths))
                          .chosen_nll(or_undefined(chosen_nll))
                          .weights(or_undefined(weights))
                          .bco_running_mean(or_undefined(bco_running_mean))
                          .bco_running_count(or_undefined(bco_running_count));
  auto out = functional::dpo_loss(policy_chosen_logps, policy_rejected_logps, or_undefined(ref_chosen_logps),
                                  or_undefined(ref_rejected_logps), options, inputs);
  return {out.losses, out.chosen_rewards, out.rejected_rewards};
}

std::tuple<at::Tensor, at::Tensor> ld_dpo_logps_op(const at::Tensor& chosen_token_logps, const at::Tensor& chosen_mask,
                                                   const at::Tensor& rejected_token_logps,
                                                   const at::Tensor& rejected_mask, double alpha) {
  auto [c, r] = ld_dpo_logps(chosen_token_logps, chosen_mask, rejected_token_logps, rejected_mask, alpha);
  return {c, r};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(("dpo_loss(Tensor policy_chosen_logps, Tensor policy_rejected_logps, Tensor? ref_chosen_logps, "
         "Tensor? ref_rejected_logps, *, " + kDPO.schema() + ", str[]? loss_types=None, float[]? loss_weights=None, "
         "Tensor? chosen_lengths=None, Tensor? rejected_lengths=None, Tensor? chosen_nll=None, Tensor? weights=None, "
         "Tensor(a!)? bco_running_mean=None, Tensor(b!)? bco_running_count=None, bool check_finite=True) "
         "-> (Tensor losses, Tensor chosen_rewards, Tensor rejected_rewards)")
            .c_str());
  m.def("wpo_pair_weights(Tensor chosen_log_weights, Tensor rejected_log_weights) -> Tensor");
  m.def(
      "ld_dpo_logps(Tensor chosen_token_logps, Tensor chosen_mask, Tensor rejected_token_logps, "
      "Tensor rejected_mask, float alpha) -> (Tensor chosen, Tensor rejected)");
  m.def("mean_token_nll(Tensor token_logps, Tensor mask) -> Tensor");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("dpo_loss", &dpo_loss_op);
  m.impl("wpo_pair_weights", &functional::wpo_pair_weights);
  m.impl("ld_dpo_logps", &ld_dpo_logps_op);
  m.impl("mean_token_nll", &mean_token_nll);
}

}  // namespace prefopt
