// Exposes the listwise losses as operators (torch.ops.prefopt.plackett_luce_loss, .all_pairs_loss,
// .lipo_lambda_loss, .irpo_loss, .pro_loss, .tpo_loss, .tpo_step_weights, .ranklist_loss). Each returns the
// unreduced per-list losses [B] and the detached per-response rewards [B, K]. Composite over the C++
// functional forms, so autograd flows through the ATen ops they call.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/losses/listwise.h>
#include "op_support.h"

namespace prefopt {
namespace {

using Pair = std::tuple<at::Tensor, at::Tensor>;
using ops::view;
const auto& opt = ops::or_undefined;
Pair result(const LossOutput& out) { return {out.losses, out.rewards}; }

const ops::OpOptions<PlackettLuceLossOptions> kPlackettLuce;
const ops::OpOptions<AllPairsLossOptions> kAllPairs;
const ops::OpOptions<LiPOLambdaLossOptions> kLiPOLambda;
const ops::OpOptions<IRPOLossOptions> kIRPO;
const ops::OpOptions<PROLossOptions> kPRO;
const ops::OpOptions<TPOLossOptions> kTPO;
const ops::OpOptions<RankListLossOptions> kRankList;

// Every list op ends with these two arguments after its declared options.
const char* const kListTail = ", str label_type=\"grades\", bool check_finite=True) -> (Tensor losses, Tensor rewards)";

template <typename Options>
Options finish(Options options, c10::string_view label_type, bool check_finite) {
  return options.labels(list_labels_from_string(view(label_type))).check_finite(check_finite).reduction(torch::kNone);
}

Pair plackett_luce_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps,
                           const at::Tensor& labels, const std::optional<at::Tensor>& mask, double beta, int64_t top_m,
                           bool reference_free, c10::string_view label_type, bool check_finite) {
  const auto options = finish(kPlackettLuce.read(beta, top_m, reference_free), label_type, check_finite);
  return result(functional::plackett_luce_loss(policy_logps, opt(ref_logps), labels, opt(mask), options));
}

Pair all_pairs_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps,
                       const at::Tensor& labels, const std::optional<at::Tensor>& mask, double beta,
                       bool reference_free, c10::string_view label_type, bool check_finite) {
  const auto options = finish(kAllPairs.read(beta, reference_free), label_type, check_finite);
  return result(functional::all_pairs_loss(policy_logps, opt(ref_logps), labels, opt(mask), options));
}

Pair lipo_lambda_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps,
                         const at::Tensor& labels, const std::optional<at::Tensor>& mask, double beta,
                         bool lambda_weighting, bool reference_free, c10::string_view label_type, bool check_finite) {
  const auto options = finish(kLiPOLambda.read(beta, lambda_weighting, reference_free), label_type, check_finite);
  return result(functional::lipo_lambda_loss(policy_logps, opt(ref_logps), labels, opt(mask), options));
}

Pair irpo_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps, const at::Tensor& labels,
                  const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& lengths, double beta,
                  c10::string_view weighting, bool length_normalize, bool reference_free, c10::string_view label_type,
                  bool check_finite) {
  const auto options =
      finish(kIRPO.read(beta, weighting, length_normalize, reference_free), label_type, check_finite);
  return result(functional::irpo_loss(policy_logps, opt(ref_logps), labels, opt(mask), opt(lengths), options));
}

Pair pro_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& lengths, const at::Tensor& labels,
                 const std::optional<at::Tensor>& mask, double sft_weight, bool length_normalize,
                 bool official_epsilon, c10::string_view label_type, bool check_finite) {
  const auto options = finish(kPRO.read(sft_weight, length_normalize, official_epsilon), label_type, check_finite);
  return result(functional::pro_loss(policy_logps, opt(lengths), labels, opt(mask), options));
}

at::Tensor tpo_step_weights_op(const at::Tensor& step_embeddings, const at::Tensor& labels,
                               const std::optional<at::Tensor>& step_mask, const std::optional<at::Tensor>& mask,
                               c10::string_view label_type) {
  return functional::tpo_step_weights(step_embeddings, opt(step_mask), labels, opt(mask),
                                      list_labels_from_string(view(label_type)));
}

Pair tpo_loss_op(const at::Tensor& policy_step_logps, const at::Tensor& ref_step_logps, const at::Tensor& labels,
                 const std::optional<at::Tensor>& step_mask, const std::optional<at::Tensor>& step_weights,
                 const std::optional<at::Tensor>& step_embeddings, const std::optional<at::Tensor>& mask, double beta,
                 bool lambda_weighting, c10::string_view label_type, bool check_finite) {
  TORCH_CHECK(!(step_weights.has_value() && step_embeddings.has_value()),
              "pass step_weights or step_embeddings, not both");
  const auto options = finish(kTPO.read(beta, lambda_weighting), label_type, check_finite);
  at::Tensor weights = opt(step_weights);
  if (step_embeddings.has_value()) {
    weights = functional::tpo_step_weights(*step_embeddings, opt(step_mask), labels, opt(mask), options.labels());
  }
  return result(
      functional::tpo_loss(policy_step_logps, ref_step_logps, opt(step_mask), weights, labels, opt(mask), options));
}

Pair ranklist_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps,
                      const at::Tensor& labels, const std::optional<at::Tensor>& mask, double beta, c10::string_view form,
                      double min_margin, int64_t window, bool reference_free, c10::string_view label_type,
                      bool check_finite) {
  const auto options =
      finish(kRankList.read(beta, form, min_margin, window, reference_free), label_type, check_finite);
  return result(functional::ranklist_loss(policy_logps, opt(ref_logps), labels, opt(mask), options));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  const std::string scores = "(Tensor policy_logps, Tensor? ref_logps, Tensor labels, Tensor? mask=None, ";
  m.def(("plackett_luce_loss" + scores + "*, " + kPlackettLuce.schema() + kListTail).c_str());
  m.def(("all_pairs_loss" + scores + "*, " + kAllPairs.schema() + kListTail).c_str());
  m.def(("lipo_lambda_loss" + scores + "*, " + kLiPOLambda.schema() + kListTail).c_str());
  m.def(("irpo_loss" + scores + "Tensor? lengths=None, *, " + kIRPO.schema() + kListTail).c_str());
  m.def(("pro_loss(Tensor policy_logps, Tensor? lengths, Tensor labels, Tensor? mask=None, *, " + kPRO.schema() +
         kListTail)
            .c_str());
  m.def(
      "tpo_step_weights(Tensor step_embeddings, Tensor labels, Tensor? step_mask=None, Tensor? mask=None, *, "
      "str label_type=\"grades\") -> Tensor");
  m.def(("tpo_loss(Tensor policy_step_logps, Tensor ref_step_logps, Tensor labels, Tensor? step_mask=None, "
         "Tensor? step_weights=None, Tensor? step_embeddings=None, Tensor? mask=None, *, " + kTPO.schema() +
         kListTail)
            .c_str());
  m.def(("ranklist_loss" + scores + "*, " + kRankList.schema() + kListTail).c_str());
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("plackett_luce_loss", &plackett_luce_loss_op);
  m.impl("all_pairs_loss", &all_pairs_loss_op);
  m.impl("lipo_lambda_loss", &lipo_lambda_loss_op);
  m.impl("irpo_loss", &irpo_loss_op);
  m.impl("pro_loss", &pro_loss_op);
  m.impl("tpo_step_weights", &tpo_step_weights_op);
  m.impl("tpo_loss", &tpo_loss_op);
  m.impl("ranklist_loss", &ranklist_loss_op);
}

}  // namespace prefopt
