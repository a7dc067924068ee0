// The pairwise margin reductions of pairwise_sums.h. The loss-facing sums (pairwise_logistic_sums,
// anchor_logsumexp) run on the fused pairwise_margin_reduce operator, so no [B, K, K] tensor exists for them in
// the forward or the backward; pair_weights, dense_levels and descending_positions build [B, K, K] tensors, but
// only detached, for metrics and for the data of a pair (levels, positions).
#include "pairwise_sums.h"

#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "../../kernels/pairwise_margin_reduce.h"

namespace prefopt::detail {
namespace {

// [B, K, K] bool: both entries valid and i != j.
at::Tensor valid_pairs(const at::Tensor& mask) {
  const int64_t k = mask.size(1);
  const at::Tensor both = mask.unsqueeze(2).logical_and(mask.unsqueeze(1));
  const at::Tensor off_diagonal = at::eye(k, mask.options().dtype(at::kBool)).logical_not();
  return both.logical_and(off_diagonal.unsqueeze(0));
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

namespace {

// The operator's view of a PairSpec: which pairs, and the weight factors of a pair that takes part.
struct KernelPairs {
  std::optional<at::Tensor> labels, gain, discount, positions;
  ops::PairwiseMarginOptions options;
};

KernelPairs kernel_pairs(const PairSpec& spec, bool with_weights) {
  KernelPairs k;
  if (spec.set == PairSet::Preferred) {
    k.options.pairs("label_order").label_margin(spec.min_margin);
    k.labels = spec.grades;
    if (spec.max_level_distance > 0) {
      // Preferred pairs have level_i < level_j, so the operator's |level_i - level_j| bound is the window.
      k.positions = dense_levels(spec.grades, spec.mask);
      k.options.max_distance(spec.max_level_distance);
    }
  } else {
    k.options.pairs("all");
  }
  if (with_weights && spec.weight == PairWeight::Lambda) {
    k.gain = spec.gains;
    k.discount = spec.inv_discounts;
  }
  return k;
}

std::tuple<at::Tensor, at::Tensor> reduce(const at::Tensor& scores, const PairSpec& spec, const KernelPairs& k) {
  // Invalid entries are zeroed first: they never form a pair, and a NaN there must not reach a gradient.
  const at::Tensor s = at::where(spec.mask, scores, at::zeros({}, scores.options()));
  return ops::pairwise_margin_reduce(s, k.labels, spec.mask, k.gain, k.discount, k.positions, k.options);
}

// [B] int64 number of pairs that take part, from the [B, K] per-anchor weight sums W of the call that computed
// the loss term. With unit weights W counts them already; lambda weights need a second, unweighted call, whose
// count is also the number with w_ij > 0 unless two gains or two inverse discounts of a pair tie exactly (LiPO's
// are distinct for distinct grades and positions).
at::Tensor pair_counts(const at::Tensor& scores, const PairSpec& spec, const at::Tensor& weight_sums) {
  c10::NoGradGuard no_grad;
  at::Tensor unit = weight_sums;
  if (spec.weight == PairWeight::Lambda) {
    unit = std::get<1>(reduce(scores.detach(), spec, kernel_pairs(spec, /*with_weights=*/false)));
  }
  return unit.detach().sum(1).round().to(at::kLong);
}

}  // namespace

PairSums pairwise_logistic_sums(const at::Tensor& scores, const PairSpec& spec) {
  KernelPairs k = kernel_pairs(spec, /*with_weights=*/true);
  k.options.fn("log1p_exp_neg").reduce("sum");
  const auto [per_anchor, weight] = reduce(scores, spec, k);
  PairSums out;
  out.value = per_anchor.sum(1);
  out.weight = weight.sum(1).detach();
  out.count = pair_counts(scores, spec, weight);
  return out;
}

AnchorLogSumExp anchor_logsumexp(const at::Tensor& scores, const PairSpec& spec, bool include_self) {
  KernelPairs k = kernel_pairs(spec, /*with_weights=*/true);
  // log sum_j w_ij exp(-(s_i - s_j)) = log sum_j w_ij exp(s_j - s_i); -inf at an anchor with no pair.
  k.options.fn("exp_neg").reduce("logsumexp");
  const auto [lse, weight] = reduce(scores, spec, k);
  AnchorLogSumExp out;
  out.has_pairs = weight.detach().gt(0);
  out.pair_counts = pair_counts(scores, spec, weight);
  // With the anchor's own term: log(1 + exp(lse)) = softplus(lse), which is 0 at lse = -inf.
  const at::Tensor value = include_self ? at::softplus(lse) : lse;
  out.value = at::where(out.has_pairs, value, at::zeros({}, value.options()));
  return out;
}

}  // namespace prefopt::detail
