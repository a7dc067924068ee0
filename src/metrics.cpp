// Ranking metrics over [B, K] lists and the idealised ranking accuracy of pairs (LOSSES.md section 8). The
// list metrics compare all pairs of a list at once ([B, K, K] booleans; K is small) and never leave the
// device: no sort with a data-dependent length, no host sync.
#include "prefopt/metrics.h"

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <ATen/OpMathType.h>

#include "losses/list_checks.h"
#include "losses/pairwise_sums.h"
#include "losses/score_checks.h"

namespace prefopt {
namespace {

struct ListView {
  at::Tensor scores;  // [B, K] in the metric dtype, 0 at invalid entries
  at::Tensor grades;  // [B, K] in the metric dtype, 0 at invalid entries
  at::Tensor mask;    // [B, K] bool
};

ListView list_view(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& mask) {
  detail::check_list_scores(scores, "scores");
  const auto dtype = scores.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  ListView v;
  v.mask = detail::list_mask(mask, "mask", scores, "scores");
  v.grades = detail::list_grades(labels, "labels", scores, "scores", v.mask, /*ranks=*/false, dtype);
  v.scores = at::where(v.mask, scores.detach().to(dtype), at::zeros({}, scores.options().dtype(dtype)));
  return v;
}

at::Tensor nan_where(const at::Tensor& defined, const at::Tensor& values) {
  return at::where(defined, values, at::full({}, std::numeric_limits<double>::quiet_NaN(), values.options()));
}

// sum over the first k positions of gain / log2(2 + position), positions 0-based.
at::Tensor dcg(const at::Tensor& gains, const at::Tensor& positions, const at::Tensor& mask, int64_t k) {
  at::Tensor take = mask;
  if (k > 0) take = take.logical_and(positions < k);
  const at::Tensor discount = (positions.to(gains.scalar_type()) + 2).log2().reciprocal();
  return at::where(take, gains * discount, at::zeros({}, gains.options())).sum(1);
}

}  // namespace

torch::Tensor ranking_accuracy(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& mask) {
  c10::NoGradGuard no_grad;
  const ListView v = list_view(scores, labels, mask);
  detail::PairSpec spec;
  spec.mask = v.mask;
  spec.grades = v.grades;
  const at::Tensor pairs = detail::pair_weights(spec, v.scores.scalar_type());  // 1 where labels_i > labels_j
  const at::Tensor correct = pairs * (v.scores.unsqueeze(2) > v.scores.unsqueeze(1)).to(pairs.scalar_type());
  const at::Tensor n = pairs.sum({1, 2});
  return nan_where(n > 0, correct.sum({1, 2}) / n.clamp_min(1));
}

torch::Tensor kendall_tau(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& mask) {
  c10::NoGradGuard no_grad;
  const ListView v = list_view(scores, labels, mask);
  detail::PairSpec spec;
  spec.mask = v.mask;
  spec.set = detail::PairSet::AllDistinct;
  const at::Tensor pairs = detail::pair_weights(spec, v.scores.scalar_type());  // ordered pairs, i != j
  const at::Tensor ds = (v.scores.unsqueeze(2) - v.scores.unsqueeze(1)).sign();
  const at::Tensor dy = (v.grades.unsqueeze(2) - v.grades.unsqueeze(1)).sign();
  // Over ordered pairs every unordered pair counts twice, which cancels in the ratio.
  const at::Tensor numerator = (pairs * ds * dy).sum({1, 2});
  const at::Tensor n0 = pairs.sum({1, 2});
  const at::Tensor untied_labels = n0 - (pairs * dy.eq(0).to(pairs.scalar_type())).sum({1, 2});
  const at::Tensor untied_scores = n0 - (pairs * ds.eq(0).to(pairs.scalar_type())).sum({1, 2});
  const at::Tensor denominator = (untied_labels * untied_scores).sqrt();
  return nan_where(denominator > 0, numerator / denominator.clamp_min(1));
}

torch::Tensor ndcg(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& mask, int64_t k) {
  TORCH_CHECK(k >= 0, "k must be >= 0 (0 = the whole list), got ", k);
  c10::NoGradGuard no_grad;
  const ListView v = list_view(scores, labels, mask);
  const at::Tensor gains = at::exp2(v.grades) - 1;
  const at::Tensor actual = dcg(gains, detail::descending_positions(v.scores, v.mask), v.mask, k);
  const at::Tensor ideal = dcg(gains, detail::descending_positions(v.grades, v.mask), v.mask, k);
  return nan_where(ideal > 0, actual / at::where(ideal > 0, ideal, at::ones({}, ideal.options())));
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
    if (outside.any().item<bool>()) {
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
