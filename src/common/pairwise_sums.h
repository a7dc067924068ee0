// The pairwise margin reductions that the listwise losses are written against (LOSSES.md section 5): per
// list, masked sums over ordered pairs (i, j) of a weight times a function of s_i - s_j, and per-anchor
// log-sum-exps over the same pairs. Internal to the library.
//
// pairwise_logistic_sums and anchor_logsumexp run on the fused pairwise_margin_reduce operator (kernels/), so
// the losses never build a [B, K, K] tensor to differentiate; pair_weights (detached, for metrics) still does.
// Everything that selects or weights a pair is data (labels, the mask, gains and discounts, a detached
// ranking): only the scores are differentiated.
#pragma once

#include <ATen/core/Tensor.h>

namespace prefopt::detail {

/// Which ordered pairs (i, j), i != j, of a list take part.
enum class PairSet {
  /// grades_i > grades_j + min_margin (ties never form a pair), optionally within max_level_distance.
  Preferred,
  /// Every pair of two distinct valid entries, whatever their grades.
  AllDistinct,
};

/// The weight of a pair that takes part.
enum class PairWeight {
  One,
  /// LambdaRank's |gain_i - gain_j| * |inv_discount_i - inv_discount_j|.
  Lambda,
};

/// Describes the pairs of every list and their weights. All tensors are [B, K] on the scores' device;
/// none of them is differentiated.
struct PairSpec {
  /// Valid entries (bool). Invalid entries never take part, whatever their scores hold.
  at::Tensor mask;
  /// Graded labels, higher is better, in the scores' accumulation dtype (needed by PairSet::Preferred).
  at::Tensor grades;
  PairSet set = PairSet::Preferred;
  /// PairSet::Preferred: a pair needs grades_i > grades_j + min_margin (>= 0).
  double min_margin = 0.0;
  /// PairSet::Preferred, > 0: a pair also needs level_j - level_i <= max_level_distance, where level is the
  /// dense rank of the grade among the list's distinct valid grades (0 = best). 0: no limit.
  int64_t max_level_distance = 0;
  PairWeight weight = PairWeight::One;
  /// PairWeight::Lambda: per-entry gains and inverse discounts.
  at::Tensor gains;
  at::Tensor inv_discounts;
};

/// [B, K, K] weight w_ij of each ordered pair (0 where the pair does not take part), in the grades' dtype
/// (the mask's dtype promoted with the gains for Lambda). Detached. The metrics use it too.
at::Tensor pair_weights(const PairSpec& spec, at::ScalarType dtype);

/// Per list sums of the logistic pair loss.
struct PairSums {
  /// [B] sum_{i,j} w_ij * log(1 + exp(-(s_i - s_j))) = sum w_ij * -logsig(s_i - s_j). Differentiable.
  at::Tensor value;
  /// [B] sum_{i,j} w_ij (the normaliser of a mean over pairs). Detached.
  at::Tensor weight;
  /// [B] int64 number of pairs that take part (w_ij > 0; for lambda weights, pairs selected before weighting,
  /// which differ only where two gains or two inverse discounts tie exactly). Detached.
  at::Tensor count;
};

/// scores: [B, K] in the accumulation dtype; entries outside spec.mask are ignored (they may hold anything).
PairSums pairwise_logistic_sums(const at::Tensor& scores, const PairSpec& spec);

/// Per anchor i: log(self + sum_j w_ij exp(s_j - s_i)), with self = 1 when include_self (the anchor
/// competes against itself, as in Plackett-Luce and RankNet's log-sum-exp form) and 0 otherwise.
struct AnchorLogSumExp {
  /// [B, K]: 0 at an anchor with no pair when include_self; at an anchor with no pair and without
  /// include_self the log-sum-exp is -inf, and value holds 0 there (use has_pairs). Differentiable; an
  /// anchor with no pair gets no gradient.
  at::Tensor value;
  /// [B, K] bool: the anchor is valid and has at least one pair (i, j) with w_ij > 0. Detached.
  at::Tensor has_pairs;
  /// [B] int64 number of pairs that take part in each list (as PairSums::count). Detached.
  at::Tensor pair_counts;
};

AnchorLogSumExp anchor_logsumexp(const at::Tensor& scores, const PairSpec& spec, bool include_self);

/// [B, K] int64 dense rank of each valid grade among the list's distinct valid grades: 0 for the best
/// grade, 1 for the next distinct one, ...; 0 at invalid entries.
at::Tensor dense_levels(const at::Tensor& grades, const at::Tensor& mask);

/// [B, K] int64 position (0-based) of each valid entry when the list's valid entries are sorted by `keys`
/// descending, ties broken by index (a stable sort); invalid entries come after every valid one.
at::Tensor descending_positions(const at::Tensor& keys, const at::Tensor& mask);

}  // namespace prefopt::detail
