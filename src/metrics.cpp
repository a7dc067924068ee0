// Ranking metrics over [B, K] lists (their math is common/ranking.cpp, shared with the listwise losses) and the
// idealised ranking accuracy of pairs (LOSSES.md section 8). Detached; never a loss.
#include <prefopt/metrics.h>

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <ATen/OpMathType.h>

#include "common/ranking.h"
#include "common/score_checks.h"

namespace prefopt {

torch::Tensor ranking_accuracy(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& mask) {
  return detail::list_ranking_accuracy(scores, labels, mask);
}

torch::Tensor kendall_tau(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& mask) {
  return detail::list_kendall_tau(scores, labels, mask);
}

torch::Tensor ndcg(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& mask, int64_t k) {
  return detail::list_ndcg(scores, labels, mask, k);
}

torch::Tensor idealized_ranking_accuracy(const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                                         const torch::Tensor& preference_probs, double beta,
                                         bool check_finite) {
  detail::check_batch_scores(ref_chosen_logps, "ref_chosen_logps");
  detail::check_same_batch(ref_rejected_logps, "ref_rejected_logps", ref_chosen_logps, "ref_chosen_logps");
  TORCH_CHECK(preference_probs.defined() && preference_probs.sizes() == ref_chosen_logps.sizes(),
              "preference_probs must have shape [B] matching ref_chosen_logps ", ref_chosen_logps.sizes(), ", got ",
              preference_probs.defined() ? preference_probs.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(preference_probs.scalar_type()),
              "preference_probs must be floating, got ", preference_probs.scalar_type());
  TORCH_CHECK(preference_probs.device() == ref_chosen_logps.device(),
              "preference_probs must be on the device of ref_chosen_logps (", ref_chosen_logps.device(), "), got ",
              preference_probs.device());
  detail::check_option_range(beta, "beta", 0.0, std::numeric_limits<double>::max(), /*low_open=*/true);
  c10::NoGradGuard no_grad;
  const auto dtype = ref_chosen_logps.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor p = preference_probs.detach().to(dtype);
  if (check_finite) {
    const at::Tensor outside = p.ge(0).logical_and(p.le(1)).logical_not();
    if (detail::any_set(outside, "preference_probs must be in [0, 1]")) {
      const int64_t index = outside.nonzero()[0][0].item<int64_t>();
      TORCH_CHECK(false, "preference_probs must be in [0, 1], got ", p[index].item<double>(), " at index ", index);
    }
    detail::check_finite(ref_chosen_logps, "ref_chosen_logps");
    detail::check_finite(ref_rejected_logps, "ref_rejected_logps");
  }
  // log(P / (1 - P)) is +inf at P = 1 and -inf at P = 0, which decides the pair whatever the reference says.
  const at::Tensor log_odds = p.log() - (-p).log1p();
  const at::Tensor margin = (ref_chosen_logps.detach().to(dtype) - ref_rejected_logps.detach().to(dtype)) + log_odds / beta;
  return margin.gt(0).to(dtype);
}

}  // namespace prefopt
