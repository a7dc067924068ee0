// The pairwise_margin_reduce operator: the core of the listwise losses of LOSSES.md section 5. For every list b
// and anchor i it reduces over the other items j of the list
//   R[b, i] = sum_j w_ij f(s_i - s_j)            (reduce = "sum")
//   R[b, i] = log sum_j w_ij exp(+-(s_i - s_j))  (reduce = "logsumexp", f = exp or exp_neg; stable)
// with f one of logsigmoid, log1p_exp_neg (= log(1 + exp(-x))), exp, exp_neg (= exp(-x)) and the pair weight
//   w_ij = [i, j valid, i != j] [labels_i > labels_j + label_margin (pairs = "label_order")]
//          [|positions_i - positions_j| <= max_distance (when both given)] |gain_i - gain_j| |discount_i - discount_j|
// (each factor only when its tensor is given). It also returns W[b, i] = sum_j w_ij. Gradients flow to the
// scores only (labels, mask, gain, discount and positions are constants). Memory: O(B K); no [B, K, K] tensor.
//
// How the listwise losses map onto it (s = the list's scores, sum over i of R unless said otherwise):
// - all-pairs RankNet / list DPO: fn log1p_exp_neg; mean over pairs = sum(R) / sum(W).
// - LiPO-lambda (and TPO's ranking loss): fn log1p_exp_neg, gain = 2^psi - 1, discount = 1 / log(1 + tau).
// - RankList exact: fn log1p_exp_neg, label_margin W; skip-wise: positions = label-order rank, max_distance k.
// - RankList log-sum-exp form: fn exp_neg, reduce logsumexp; per anchor log(1 + sum ...) = softplus(R).
// - IRPO: pairs all, fn exp_neg, reduce logsumexp: A_k = R_k - log(n_valid - 1).
// Internal C++ entry point for the losses; torch.ops.prefopt.pairwise_margin_reduce from Python.
#pragma once

#include <optional>
#include <string>
#include <tuple>

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>
#include <torch/arg.h>

#include "common/pairwise_margin_reduce.h"

namespace prefopt::ops {

struct PairwiseMarginOptions {
  /// "logsigmoid", "log1p_exp_neg", "exp" or "exp_neg": f(x) of x = s_i - s_j.
  TORCH_ARG(std::string, fn) = "log1p_exp_neg";
  /// "sum" or "logsumexp" (the latter with fn exp or exp_neg only).
  TORCH_ARG(std::string, reduce) = "sum";
  /// "label_order" (j counts for anchor i when labels_i > labels_j + label_margin) or "all" (every valid j != i).
  TORCH_ARG(std::string, pairs) = "label_order";
  /// >= 0; strict: tied labels never form a pair.
  TORCH_ARG(double, label_margin) = 0.0;
  /// With positions: pairs farther apart than this are skipped; -1: no bound.
  TORCH_ARG(int64_t, max_distance) = -1;
};

/// scores [B, K] (fp32/bf16/fp16/fp64); labels, gain, discount, positions [B, K] real (any floating or integer
/// dtype), mask [B, K] bool, each optional (labels required for pairs = "label_order"; positions for
/// max_distance >= 0). Returns (R [B, K], W [B, K]) in the accumulation dtype (fp32, fp64 for fp64 scores).
/// An anchor with no pair (or masked out) gives R = 0 for "sum" and -inf for "logsumexp", and gradient 0.
std::tuple<at::Tensor, at::Tensor> pairwise_margin_reduce(const at::Tensor& scores,
                                                          const std::optional<at::Tensor>& labels,
                                                          const std::optional<at::Tensor>& mask,
                                                          const std::optional<at::Tensor>& gain,
                                                          const std::optional<at::Tensor>& discount,
                                                          const std::optional<at::Tensor>& positions,
                                                          const PairwiseMarginOptions& options = {});

namespace detail {

struct PairwiseConfig {
  int32_t fn;
  int32_t reduce;
  int32_t rule;
};

// Validates the strings and their combination; the messages name the argument and list what is allowed.
PairwiseConfig parse_pairwise_options(c10::string_view fn, c10::string_view reduce, c10::string_view pairs);

void check_pairwise_inputs(const at::Tensor& scores, const std::optional<at::Tensor>& labels,
                           const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& gain,
                           const std::optional<at::Tensor>& discount, const std::optional<at::Tensor>& positions,
                           c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
                           double label_margin, int64_t max_distance);

// The backward's grad_per_anchor and per_anchor have the shape of scores.
void check_pairwise_backward_shapes(const at::Tensor& grad_per_anchor, const at::Tensor& per_anchor,
                                   const at::Tensor& scores);

at::Tensor pairwise_margin_reduce_backward(const at::Tensor& grad_per_anchor, const at::Tensor& scores,
                                           const at::Tensor& per_anchor, const std::optional<at::Tensor>& labels,
                                           const std::optional<at::Tensor>& mask,
                                           const std::optional<at::Tensor>& gain,
                                           const std::optional<at::Tensor>& discount,
                                           const std::optional<at::Tensor>& positions, c10::string_view fn,
                                           c10::string_view reduce, c10::string_view pairs, double label_margin,
                                           int64_t max_distance);

// The optional per-item tensors as contiguous tensors of `dtype` (mask as bool), or undefined.
at::Tensor pairwise_item_tensor(const std::optional<at::Tensor>& t, at::ScalarType dtype);

// The inputs as the kernels read them: contiguous, in the accumulation dtype (mask bool), undefined when absent.
struct PairwiseItems {
  at::Tensor scores, labels, mask, gain, discount, positions;
};
PairwiseItems pairwise_items(const at::Tensor& scores, const std::optional<at::Tensor>& labels,
                             const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& gain,
                             const std::optional<at::Tensor>& discount, const std::optional<at::Tensor>& positions,
                             at::ScalarType acc);

// The kernel parameters of `t` (shared by the CPU and CUDA kernels; outputs are filled in by the caller).
template <typename acc_t>
kernels::PairwiseParams<acc_t> make_pairwise_params(const PairwiseItems& t, const PairwiseConfig& c,
                                                    double label_margin, int64_t max_distance) {
  auto ptr = [](const at::Tensor& x) { return x.defined() ? x.const_data_ptr<acc_t>() : nullptr; };
  kernels::PairwiseParams<acc_t> p{};
  p.scores = t.scores.const_data_ptr<acc_t>();
  p.labels = ptr(t.labels);
  p.mask = t.mask.defined() ? t.mask.const_data_ptr<bool>() : nullptr;
  p.gain = ptr(t.gain);
  p.discount = ptr(t.discount);
  p.positions = ptr(t.positions);
  p.lists = t.scores.size(0);
  p.items = t.scores.size(1);
  p.fn = c.fn;
  p.reduce = c.reduce;
  p.rule = c.rule;
  p.label_margin = static_cast<acc_t>(label_margin);
  p.max_distance = static_cast<acc_t>(max_distance);
  return p;
}

}  // namespace detail
}  // namespace prefopt::ops
