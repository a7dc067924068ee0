// Plain ATen bodies of the pairwise margin reductions (see pairwise_sums.h). They materialise [B, K, K]
// tensors: d_ij = s_i - s_j, the pair weights, and the per-pair terms. A fused kernel replaces these bodies
// for large K; until then, what they compute is the specification the kernel is tested against.
#include "pairwise_sums.h"

#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace prefopt::detail {
namespace {

// [B, K, K] bool: both entries valid and i != j.
at::Tensor valid_pairs(const at::Tensor& mask) {
  const int64_t k = mask.size(1);
  const at::Tensor both = mask.unsqueeze(2).logical_and(mask.unsqueeze(1));
  const at::Tensor off_diagonal = at::eye(k, mask.options().dtype(at::kBool)).logical_not();
  return both.logical_and(off_diagonal.unsqueeze(0));
}

// [B, K, K] d_ij = s_i - s_j, with invalid entries' scores replaced by 0 first (so garbage or +-inf in
// padding never reaches a sum, a gradient, or a 0 * inf).
at::Tensor pair_differences(const at::Tensor& scores, const at::Tensor& mask) {
  const at::Tensor s = at::where(mask, scores, at::zeros({}, scores.options()));
  return s.unsqueeze(2) - s.unsqueeze(1);
}

}  // namespace

at::Tensor dense_levels(const at::Tensor& grades, const at::Tensor& mask) {
  const int64_t k = grades.size(1);
  // better[b, i, j]: j is valid and strictly better than i.
  const at::Tensor better = mask.unsqueeze(1).logical_and(grades.unsqueeze(1) > grades.unsqueeze(2));
  // first[b, j]: j is the first valid entry holding its grade.
  const at::Tensor earlier = at::ones({k, k}, mask.options()).tril(-1);  // earlier[j, j'] = j' < j
  const at::Tensor same_earlier =
      grades.unsqueeze(2).eq(grades.unsqueeze(1)).logical_and(mask.unsqueeze(1)).logical_and(earlier.unsqueeze(0));
  const at::Tensor first = mask.logical_and(same_earlier.any(2).logical_not());
  const at::Tensor levels = better.logical_and(first.unsqueeze(1)).sum(2);
  return at::where(mask, levels, at::zeros({}, levels.options()));
}

at::Tensor descending_positions(const at::Tensor& keys, const at::Tensor& mask) {
  const int64_t k = keys.size(1);
  const at::Tensor earlier = at::ones({k, k}, mask.options()).tril(-1).unsqueeze(0);  // [1, i, j]: j < i
  const at::Tensor valid_j = mask.unsqueeze(1);
  const at::Tensor greater = keys.unsqueeze(1) > keys.unsqueeze(2);  // [b, i, j]: key_j > key_i
  const at::Tensor tied_before = keys.unsqueeze(1).eq(keys.unsqueeze(2)).logical_and(earlier);
  const at::Tensor ahead = valid_j.logical_and(greater.logical_or(tied_before));
  const at::Tensor valid_position = ahead.sum(2);
  // Invalid entries go after the valid ones, in index order.
  const at::Tensor invalid_before = valid_j.logical_not().logical_and(earlier).sum(2);
  const at::Tensor invalid_position = mask.sum(1, /*keepdim=*/true) + invalid_before;
  return at::where(mask, valid_position, invalid_position);
}

at::Tensor pair_weights(const PairSpec& spec, at::ScalarType dtype) {
  c10::NoGradGuard no_grad;
  at::Tensor take = valid_pairs(spec.mask);
  if (spec.set == PairSet::Preferred) {
    const at::Tensor g = spec.grades;
    take = take.logical_and(g.unsqueeze(2) > g.unsqueeze(1) + spec.min_margin);
    if (spec.max_level_distance > 0) {
      const at::Tensor level = dense_levels(g, spec.mask);
      take = take.logical_and((level.unsqueeze(1) - level.unsqueeze(2)) <= spec.max_level_distance);
    }
  }
  at::Tensor weights = take.to(dtype);
  if (spec.weight == PairWeight::Lambda) {
    const at::Tensor gain = spec.gains.to(dtype);
    const at::Tensor inv = spec.inv_discounts.to(dtype);
    const at::Tensor lambda =
        (gain.unsqueeze(2) - gain.unsqueeze(1)).abs() * (inv.unsqueeze(2) - inv.unsqueeze(1)).abs();
    weights = at::where(take, lambda, at::zeros({}, lambda.options()));
  }
  return weights;
}

PairSums pairwise_logistic_sums(const at::Tensor& scores, const PairSpec& spec) {
  const at::Tensor weights = pair_weights(spec, scores.scalar_type());
  const at::Tensor d = pair_differences(scores, spec.mask);
  // -logsig(d) is finite for every finite d; pairs with weight 0 contribute exact zeros.
  const at::Tensor terms = weights * -at::log_sigmoid(d);
  PairSums out;
  out.value = terms.sum({1, 2});
  out.weight = weights.sum({1, 2});
  out.count = weights.gt(0).sum({1, 2});
  return out;
}

AnchorLogSumExp anchor_logsumexp(const at::Tensor& scores, const PairSpec& spec, bool include_self) {
  const at::Tensor weights = pair_weights(spec, scores.scalar_type());
  const at::Tensor take = weights.gt(0);
  AnchorLogSumExp out;
  out.has_pairs = take.any(2);
  // Terms log w_ij + s_j - s_i; pairs that do not take part are -inf (exp gives 0). A row with no pair
  // would make logsumexp -inf with a NaN gradient, so such rows are fed zeros and overwritten after.
  const at::Tensor d = -pair_differences(scores, spec.mask);  // [b, i, j] = s_j - s_i
  const at::Tensor neg_inf = at::full({}, -std::numeric_limits<double>::infinity(), d.options());
  at::Tensor terms = at::where(take, d + weights.clamp_min(std::numeric_limits<float>::min()).log(), neg_inf);
  terms = at::where(out.has_pairs.unsqueeze(2), terms, at::zeros({}, d.options()));
  if (include_self) {
    // The anchor's own term exp(s_i - s_i) = 1.
    terms = at::cat({terms, at::zeros({terms.size(0), terms.size(1), 1}, d.options())}, 2);
  }
  const at::Tensor lse = at::logsumexp(terms, {2});
  out.value = at::where(out.has_pairs, lse, at::zeros({}, lse.options()));
  return out;
}

}  // namespace prefopt::detail
