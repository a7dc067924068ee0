// The ranking metrics' math over [B, K] lists: pairwise ranking accuracy, Kendall's tau-b and NDCG, comparing all
// pairs of a list at once ([B, K, K] booleans; K is small) and never leaving the device (no sort with a
// data-dependent length, no host sync). Shared by the public metrics (metrics.cpp) and the listwise losses'
// metrics; internal to the library, detached, never a loss.
#include "ranking.h"

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "list_checks.h"
#include "pairwise_sums.h"

namespace prefopt::detail {
namespace {

struct ListView {
  at::Tensor scores;  // [B, K] in the metric dtype, 0 at invalid entries
  at::Tensor grades;  // [B, K] in the metric dtype, 0 at invalid entries
  at::Tensor mask;    // [B, K] bool
};

ListView list_view(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& mask) {
  check_list_scores(scores, "scores");
  const auto dtype = scores.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  ListView v;
  v.mask = list_mask(mask, "mask", scores, "scores");
  v.grades = list_grades(labels, "labels", scores, "scores", v.mask, /*ranks=*/false, dtype);
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

at::Tensor list_ranking_accuracy(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& mask) {
  c10::NoGradGuard no_grad;
  const ListView v = list_view(scores, labels, mask);
  PairSpec spec;
  spec.mask = v.mask;
  spec.grades = v.grades;
  const at::Tensor pairs = pair_weights(spec, v.scores.scalar_type());  // 1 where labels_i > labels_j
  const at::Tensor correct = pairs * (v.scores.unsqueeze(2) > v.scores.unsqueeze(1)).to(pairs.scalar_type());
  const at::Tensor n = pairs.sum({1, 2});
  return nan_where(n > 0, correct.sum({1, 2}) / n.clamp_min(1));
}

at::Tensor list_kendall_tau(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& mask) {
  c10::NoGradGuard no_grad;
  const ListView v = list_view(scores, labels, mask);
  PairSpec spec;
  spec.mask = v.mask;
  spec.set = PairSet::AllDistinct;
  const at::Tensor pairs = pair_weights(spec, v.scores.scalar_type());  // ordered pairs, i != j
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

at::Tensor list_ndcg(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& mask, int64_t k) {
  TORCH_CHECK(k >= 0, "k must be >= 0 (0 = the whole list), got ", k);
  c10::NoGradGuard no_grad;
  const ListView v = list_view(scores, labels, mask);
  const at::Tensor gains = at::exp2(v.grades) - 1;
  const at::Tensor actual = dcg(gains, descending_positions(v.scores, v.mask), v.mask, k);
  const at::Tensor ideal = dcg(gains, descending_positions(v.grades, v.mask), v.mask, k);
  return nan_where(ideal > 0, actual / at::where(ideal > 0, ideal, at::ones({}, ideal.options())));
}

}  // namespace prefopt::detail
