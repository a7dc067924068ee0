// Exposes the ranking metrics as operators (torch.ops.prefopt.ranking_accuracy, .kendall_tau, .ndcg,
// .idealized_ranking_accuracy). Composite over the C++ functions in src/metrics.cpp; their outputs are
// detached.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/metrics.h>

namespace prefopt {
namespace {

at::Tensor ranking_accuracy_op(const at::Tensor& scores, const at::Tensor& labels,
                               const std::optional<at::Tensor>& mask) {
  return ranking_accuracy(scores, labels, mask.value_or(at::Tensor()));
}

at::Tensor kendall_tau_op(const at::Tensor& scores, const at::Tensor& labels, const std::optional<at::Tensor>& mask) {
  return kendall_tau(scores, labels, mask.value_or(at::Tensor()));
}

at::Tensor ndcg_op(const at::Tensor& scores, const at::Tensor& labels, const std::optional<at::Tensor>& mask,
                   int64_t k) {
  return ndcg(scores, labels, mask.value_or(at::Tensor()), k);
}

at::Tensor idealized_ranking_accuracy_op(const at::Tensor& ref_chosen_logps, const at::Tensor& ref_rejected_logps,
                                         const at::Tensor& preference_probs, double beta, bool check_finite) {
  return idealized_ranking_accuracy(ref_chosen_logps, ref_rejected_logps, preference_probs, beta, check_finite);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def("ranking_accuracy(Tensor scores, Tensor labels, Tensor? mask=None) -> Tensor");
  m.def("kendall_tau(Tensor scores, Tensor labels, Tensor? mask=None) -> Tensor");
  m.def("ndcg(Tensor scores, Tensor labels, Tensor? mask=None, *, int k=0) -> Tensor");
  m.def(
      "idealized_ranking_accuracy(Tensor ref_chosen_logps, Tensor ref_rejected_logps, Tensor preference_probs, *, "
      "float beta=0.1, bool check_finite=True) -> Tensor");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("ranking_accuracy", &ranking_accuracy_op);
  m.impl("kendall_tau", &kendall_tau_op);
  m.impl("ndcg", &ndcg_op);
  m.impl("idealized_ranking_accuracy", &idealized_ranking_accuracy_op);
}

}  // namespace prefopt
