// Exposes the listwise losses as operators (torch.ops.prefopt.plackett_luce_loss, .all_pairs_loss,
// .lipo_lambda_loss, .irpo_loss, .pro_loss, .tpo_loss, .tpo_step_weights, .ranklist_loss). Each returns the
// unreduced per-list losses [B] and the detached per-response rewards [B, K]. Composite over the C++
// functional forms, so autograd flows through the ATen ops they call.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "prefopt/losses/listwise.h"

namespace prefopt {
namespace {

using Pair = std::tuple<at::Tensor, at::Tensor>;

std::string_view view(c10::string_view s) { return {s.data(), s.size()}; }
at::Tensor opt(const std::optional<at::Tensor>& t) { return t.value_or(at::Tensor()); }
Pair result(const LossOutput& out) { return {out.losses, out.rewards}; }

Pair plackett_luce_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps,
                           const at::Tensor& labels, const std::optional<at::Tensor>& mask, double beta, int64_t top_m,
                           c10::string_view label_type, bool reference_free, bool check_finite) {
  const auto options = PlackettLuceLossOptions()
                           .beta(beta)
                           .top_m(top_m)
                           .labels(list_labels_from_string(view(label_type)))
                           .reference_free(reference_free)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  return result(functional::plackett_luce_loss(policy_logps, opt(ref_logps), labels, opt(mask), options));
}

Pair all_pairs_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps,
                       const at::Tensor& labels, const std::optional<at::Tensor>& mask, double beta,
                       c10::string_view label_type, bool reference_free, bool check_finite) {
  const auto options = AllPairsLossOptions()
                           .beta(beta)
                           .labels(list_labels_from_string(view(label_type)))
                           .reference_free(reference_free)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  return result(functional::all_pairs_loss(policy_logps, opt(ref_logps), labels, opt(mask), options));
}

Pair lipo_lambda_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps,
                         const at::Tensor& labels, const std::optional<at::Tensor>& mask, double beta,
                         bool lambda_weighting, c10::string_view label_type, bool reference_free, bool check_finite) {
  const auto options = LiPOLambdaLossOptions()
                           .beta(beta)
                           .lambda_weighting(lambda_weighting)
                           .labels(list_labels_from_string(view(label_type)))
                           .reference_free(reference_free)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  return result(functional::lipo_lambda_loss(policy_logps, opt(ref_logps), labels, opt(mask), options));
}

Pair irpo_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps, const at::Tensor& labels,
                  const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& lengths, double beta,
                  c10::string_view weighting, bool length_normalize, c10::string_view label_type, bool reference_free,
                  bool check_finite) {
  const auto options = IRPOLossOptions()
                           .beta(beta)
                           .weighting(irpo_weighting_from_string(view(weighting)))
                           .length_normalize(length_normalize)
                           .labels(list_labels_from_string(view(label_type)))
                           .reference_free(reference_free)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  return result(functional::irpo_loss(policy_logps, opt(ref_logps), labels, opt(mask), opt(lengths), options));
}

Pair pro_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& lengths, const at::Tensor& labels,
                 const std::optional<at::Tensor>& mask, double sft_weight, bool length_normalize,
                 c10::string_view label_type, bool check_finite) {
  const auto options = PROLossOptions()
                           .sft_weight(sft_weight)
                           .length_normalize(length_normalize)
                           .labels(list_labels_from_string(view(label_type)))
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
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
  const ListLabels kind = list_labels_from_string(view(label_type));
  at::Tensor weights = opt(step_weights);
  if (step_embeddings.has_value()) {
    weights = functional::tpo_step_weights(*step_embeddings, opt(step_mask), labels, opt(mask), kind);
  }
  const auto options = TPOLossOptions()
                           .beta(beta)
                           .lambda_weighting(lambda_weighting)
                           .labels(kind)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  return result(
      functional::tpo_loss(policy_step_logps, ref_step_logps, opt(step_mask), weights, labels, opt(mask), options));
}

Pair ranklist_loss_op(const at::Tensor& policy_logps, const std::optional<at::Tensor>& ref_logps,
                      const at::Tensor& labels, const std::optional<at::Tensor>& mask, double beta, c10::string_view form,
                      double min_margin, int64_t window, c10::string_view label_type, bool reference_free,
                      bool check_finite) {
  const auto options = RankListLossOptions()
                           .beta(beta)
                           .form(ranklist_form_from_string(view(form)))
                           .min_margin(min_margin)
                           .window(window)
                           .labels(list_labels_from_string(view(label_type)))
                           .reference_free(reference_free)
                           .check_finite(check_finite)
                           .reduction(torch::kNone);
  return result(functional::ranklist_loss(policy_logps, opt(ref_logps), labels, opt(mask), options));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "plackett_luce_loss(Tensor policy_logps, Tensor? ref_logps, Tensor labels, Tensor? mask=None, *, "
      "float beta=0.1, int top_m=0, str label_type=\"grades\", bool reference_free=False, bool check_finite=True) "
      "-> (Tensor losses, Tensor rewards)");
  m.def(
      "all_pairs_loss(Tensor policy_logps, Tensor? ref_logps, Tensor labels, Tensor? mask=None, *, float beta=0.1, "
      "str label_type=\"grades\", bool reference_free=False, bool check_finite=True) -> (Tensor losses, Tensor rewards)");
  m.def(
      "lipo_lambda_loss(Tensor policy_logps, Tensor? ref_logps, Tensor labels, Tensor? mask=None, *, "
      "float beta=0.05, bool lambda_weighting=True, str label_type=\"grades\", bool reference_free=False, "
      "bool check_finite=True) -> (Tensor losses, Tensor rewards)");
  m.def(
      "irpo_loss(Tensor policy_logps, Tensor? ref_logps, Tensor labels, Tensor? mask=None, Tensor? lengths=None, *, "
      "float beta=1.0, str weighting=\"dcg\", bool length_normalize=False, str label_type=\"grades\", "
      "bool reference_free=False, bool check_finite=True) -> (Tensor losses, Tensor rewards)");
  m.def(
      "pro_loss(Tensor policy_logps, Tensor? lengths, Tensor labels, Tensor? mask=None, *, float sft_weight=0.05, "
      "bool length_normalize=True, str label_type=\"grades\", bool check_finite=True) -> (Tensor losses, Tensor rewards)");
  m.def(
      "tpo_step_weights(Tensor step_embeddings, Tensor labels, Tensor? step_mask=None, Tensor? mask=None, *, "
      "str label_type=\"grades\") -> Tensor");
  m.def(
      "tpo_loss(Tensor policy_step_logps, Tensor ref_step_logps, Tensor labels, Tensor? step_mask=None, "
      "Tensor? step_weights=None, Tensor? step_embeddings=None, Tensor? mask=None, *, float beta=0.1, "
      "bool lambda_weighting=True, str label_type=\"grades\", bool check_finite=True) -> (Tensor losses, Tensor rewards)");
  m.def(
      "ranklist_loss(Tensor policy_logps, Tensor? ref_logps, Tensor labels, Tensor? mask=None, *, float beta=0.1, "
      "str form=\"exact\", float min_margin=0.0, int window=0, str label_type=\"grades\", bool reference_free=False, "
      "bool check_finite=True) -> (Tensor losses, Tensor rewards)");
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
