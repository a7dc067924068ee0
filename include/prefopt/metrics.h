// Ranking metrics of scored lists (ranking accuracy, Kendall's tau, NDCG@k) and the idealised ranking
// accuracy of a preference pair (LOSSES.md section 8). Usable on their own, and inside the listwise losses,
// which log them. Every result is detached, per list (or per pair), in float32 (float64 for float64
// scores); a list on which a metric is undefined gets NaN there, so that `.nanmean()` averages over the
// lists where it is defined. None of them syncs with the host.
#pragma once

#include <torch/types.h>

namespace prefopt {

/// Fraction of a list's label-ordered pairs that the scores order the same way.
///
/// - scores: [B, K] floating; labels: [B, K] graded labels (higher is better; integer or floating);
///   mask: [B, K] (bool or 0/1; undefined = every entry valid). Same device.
/// - For list b: over the valid pairs (i, j) with labels_i > labels_j (ties in labels never form a pair),
///   the fraction with scores_i > scores_j (strict: tied scores count as wrong).
/// - returns [B]; NaN for a list with no such pair (fewer than two valid entries, or all labels tied).
///
/// Example:
/// ```
/// auto acc = prefopt::ranking_accuracy(rewards, labels);   // [B]
/// double mean = acc.nanmean().item<double>();
/// ```
torch::Tensor ranking_accuracy(const torch::Tensor& scores, const torch::Tensor& labels,
                               const torch::Tensor& mask = {});

/// Kendall's tau-b between scores and labels, per list:
/// `(C - D) / sqrt((n0 - n1)(n0 - n2))` over the valid unordered pairs, C concordant, D discordant,
/// n0 all pairs, n1 pairs tied in labels, n2 pairs tied in scores (scipy's default variant).
///
/// - Shapes as ranking_accuracy. returns [B] in [-1, 1]; NaN when the denominator is 0 (fewer than two
///   valid entries, all labels tied, or all scores tied).
///
/// Example:
/// ```
/// auto tau = prefopt::kendall_tau(rewards, labels, mask);   // [B]
/// ```
torch::Tensor kendall_tau(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& mask = {});

/// NDCG@k per list, with gains `2^label - 1` and discounts `1 / log2(1 + position)` (position 1-based).
///
/// - The ranking is the valid entries sorted by score descending, ties broken by index (a stable sort);
///   the ideal ranking sorts them by label. DCG and the ideal DCG sum over the first k positions; k = 0
///   (default) means the whole list. Labels should be >= 0 (a negative label has a negative gain).
/// - returns [B]; NaN where the ideal DCG is 0 (no valid entry with a positive gain).
///
/// Example:
/// ```
/// auto ndcg3 = prefopt::ndcg(rewards, relevance, mask, /*k=*/3);   // [B]
/// ```
torch::Tensor ndcg(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& mask = {},
                   int64_t k = 0);

/// Idealised ranking accuracy of pairs (Chen et al. 2024, arXiv 2405.19534): whether the optimum of DPO
/// with temperature beta ranks the pair correctly, given the reference model and the ground-truth
/// probability P that the chosen response is preferred:
/// `1[(ref_chosen - ref_rejected) + (1/beta) log(P / (1 - P)) > 0]`.
///
/// - ref_chosen_logps, ref_rejected_logps: [B] floating, one dtype; preference_probs: [B] floating, each in
///   [0, 1] (P = 1 counts as correct and P = 0 as wrong whatever the reference says; P = 0.5 leaves the
///   reference's own ranking, strict). beta > 0.
/// - returns [B] of 0/1 in float32 (float64 for float64 input); its mean is the idealised accuracy.
///   With check_finite (default), raises when a P lies outside [0, 1] or a reference log-prob is NaN/Inf
///   (one host sync); without it, such entries give 0.
///
/// Example:
/// ```
/// auto ideal = prefopt::idealized_ranking_accuracy(ref_c, ref_r, probs, /*beta=*/0.1).mean();
/// ```
torch::Tensor idealized_ranking_accuracy(const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                                         const torch::Tensor& preference_probs, double beta,
                                         bool check_finite = true);

}  // namespace prefopt
