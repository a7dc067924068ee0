// The ranking metrics' math over [B, K] lists (scores, graded labels, validity mask), shared by the public metrics
// and the listwise losses' metrics so that neither includes the other. Detached; internal to the library.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace prefopt::detail {

// [B] per list: the fraction of label-ordered pairs (labels_i > labels_j) whose scores are in the same order; NaN
// for a list with no such pair.
at::Tensor list_ranking_accuracy(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& mask);
// [B] Kendall's tau-b between scores and labels; NaN where either side is all tied.
at::Tensor list_kendall_tau(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& mask);
// [B] NDCG@k (k = 0: the whole list) with gains 2^label - 1; NaN where the ideal DCG is 0.
at::Tensor list_ndcg(const at::Tensor& scores, const at::Tensor& labels, const at::Tensor& mask, int64_t k);

}  // namespace prefopt::detail
