// The per-pair math of pairwise_margin_reduce (LOSSES.md section 5): for anchor i of a list and every other
// item j, a weight w_ij (validity, label order with a margin, lambda-style gain/discount factors, a bound
// on the label-order distance) times a function of x_ij = s_i - s_j, reduced over j by a sum or a stable
// log-sum-exp. The anchor's value comes from one loop over j, and its gradient from one more, so no
// [B, K, K] tensor exists for any K. Shared by the CPU and CUDA kernels.
#pragma once

#include <cstdint>

#include "host_device.h"
#include "online_logsumexp.h"

namespace prefopt::kernels {

// f(x), x = s_i - s_j.
enum PairFn : int32_t {
  kPairLogSigmoid = 0,  // log sigmoid(x)
  kPairLog1pExpNeg = 1,  // log(1 + exp(-x)) = -log sigmoid(x)
  kPairExp = 2,          // exp(x)
  kPairExpNeg = 3,       // exp(-x)
};

enum PairReduce : int32_t {
  kReduceSum = 0,        // R_i = sum_j w_ij f(x_ij)
  kReduceLogSumExp = 1,  // R_i = log sum_j w_ij f(x_ij), f = exp or exp_neg, computed stably
};

enum PairRule : int32_t {
  kPairsLabelOrder = 0,  // j counts for anchor i when labels_i > labels_j + label_margin
  kPairsAll = 1,         // every valid j != i
};

template <typename acc_t>
struct PairwiseParams {
  const acc_t* scores;     // [lists, items], contiguous
  const acc_t* labels;     // [lists, items] or null (only with kPairsAll)
  const bool* mask;        // [lists, items] or null: every item valid
  const acc_t* gain;       // [lists, items] or null: factor |gain_i - gain_j|
  const acc_t* discount;   // [lists, items] or null: factor |discount_i - discount_j|
  const acc_t* positions;  // [lists, items] or null: with max_distance >= 0, |pos_i - pos_j| <= max_distance
  int64_t lists;
  int64_t items;
  int32_t fn;
  int32_t reduce;
  int32_t rule;
  acc_t label_margin;
  acc_t max_distance;  // < 0: no bound
  acc_t* per_anchor;   // [lists, items] (forward output; backward input for the log-sum-exp reduction)
  acc_t* weight_sum;   // [lists, items], sum_j w_ij (forward only)
  const acc_t* grad_per_anchor;  // backward input
  acc_t* grad_scores;            // backward output, [lists, items]
};

template <typename acc_t>
PREFOPT_HOST_DEVICE bool pair_anchor_valid(const PairwiseParams<acc_t>& p, int64_t base, int64_t i) {
  return p.mask == nullptr || p.mask[base + i];
}

// w_ij for items i, j of the list whose first item is at `base`; 0 when (i, j) is not a pair.
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t pair_weight(const PairwiseParams<acc_t>& p, int64_t base, int64_t i, int64_t j) {
  if (i == j) return acc_t(0);
  if (p.mask != nullptr && !(p.mask[base + i] && p.mask[base + j])) return acc_t(0);
  if (p.rule == kPairsLabelOrder && !(p.labels[base + i] - p.labels[base + j] > p.label_margin)) return acc_t(0);
  if (p.positions != nullptr && p.max_distance >= acc_t(0) &&
      fabs_(p.positions[base + i] - p.positions[base + j]) > p.max_distance) {
    return acc_t(0);
  }
  acc_t w = acc_t(1);
  if (p.gain != nullptr) w *= fabs_(p.gain[base + i] - p.gain[base + j]);
  if (p.discount != nullptr) w *= fabs_(p.discount[base + i] - p.discount[base + j]);
  return w;
}

// log(1 + exp(-|x|)), the shared tail of the stable log-sigmoid and softplus.
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t log1p_exp_neg_abs(acc_t x) {
  return flog1p(fexp(-fabs_(x)));
}

template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t stable_sigmoid(acc_t x) {
  if (x >= acc_t(0)) return acc_t(1) / (acc_t(1) + fexp(-x));
  const acc_t e = fexp(x);
  return e / (acc_t(1) + e);
}

template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t pair_fn(int32_t fn, acc_t x) {
  switch (fn) {
    case kPairLogSigmoid:
      return (x < acc_t(0) ? x : acc_t(0)) - log1p_exp_neg_abs(x);
    case kPairLog1pExpNeg:
      return (x > acc_t(0) ? acc_t(0) : -x) + log1p_exp_neg_abs(x);
    case kPairExp:
      return fexp(x);
    default:
      return fexp(-x);
  }
}

// f'(x).
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t pair_fn_grad(int32_t fn, acc_t x) {
  switch (fn) {
    case kPairLogSigmoid:
      return stable_sigmoid(-x);
    case kPairLog1pExpNeg:
      return -stable_sigmoid(-x);
    case kPairExp:
      return fexp(x);
    default:
      return -fexp(-x);
  }
}

// The exponent of f for the log-sum-exp reduction: f(x) = exp(sign * x).
PREFOPT_HOST_DEVICE int32_t pair_exp_sign(int32_t fn) { return fn == kPairExp ? 1 : -1; }

// Accumulates anchor i's reduction over j. Sum: plain sums of w f and w. Log-sum-exp: an online LSE of
// sign * x + log w over the pairs with w > 0.
template <typename acc_t>
struct PairAnchorState {
  using acc_type = acc_t;
  acc_t value;  // sum of w f(x), or the running max of the LSE
  acc_t aux;    // unused for the sum, the LSE's running sum of exponentials
  acc_t weight_sum;

  PREFOPT_HOST_DEVICE static PairAnchorState empty(int32_t reduce) {
    return {reduce == kReduceSum ? acc_t(0) : neg_infinity<acc_t>(), acc_t(0), acc_t(0)};
  }

  PREFOPT_HOST_DEVICE void add(int32_t fn, int32_t reduce, acc_t w, acc_t x) {
    if (w == acc_t(0)) return;
    weight_sum += w;
    if (reduce == kReduceSum) {
      value += w * pair_fn(fn, x);
    } else {
      OnlineLogSumExp<acc_t> lse{value, aux};
      lse.add(acc_t(pair_exp_sign(fn)) * x + flog(w));
      value = lse.max;
      aux = lse.sum;
    }
  }

  PREFOPT_HOST_DEVICE void merge(int32_t reduce, const PairAnchorState& o) {
    weight_sum += o.weight_sum;
    if (reduce == kReduceSum) {
      value += o.value;
    } else {
      OnlineLogSumExp<acc_t> lse{value, aux};
      lse.merge(OnlineLogSumExp<acc_t>{o.value, o.aux});
      value = lse.max;
      aux = lse.sum;
    }
  }

  // The anchor's R_i: the sum (0 with no pair), or the LSE (-inf with no pair).
  PREFOPT_HOST_DEVICE acc_t result(int32_t reduce) const {
    if (reduce == kReduceSum) return value;
    return aux == acc_t(0) ? neg_infinity<acc_t>() : value + flog(aux);
  }
};

// d R_i / d x_ij for one pair, given R_i (needed by the log-sum-exp reduction only).
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t pair_term_grad(int32_t fn, int32_t reduce, acc_t w, acc_t x, acc_t r_i) {
  if (w == acc_t(0)) return acc_t(0);
  if (reduce == kReduceSum) return w * pair_fn_grad(fn, x);
  const acc_t sign = acc_t(pair_exp_sign(fn));
  return sign * w * fexp(sign * x - r_i);
}

// d L / d s_k for L = sum_i g_i R_i: anchor k's own pairs (x_kj) minus the pairs where k is the other item
// (x_jk = -x_kj). One loop over j.
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t pairwise_grad_item(const PairwiseParams<acc_t>& p, int64_t base, int64_t k, int64_t j) {
  const acc_t x_kj = p.scores[base + k] - p.scores[base + j];
  acc_t out = acc_t(0);
  const acc_t g_k = p.grad_per_anchor[base + k];
  if (g_k != acc_t(0)) {
    out += g_k * pair_term_grad(p.fn, p.reduce, pair_weight(p, base, k, j), x_kj, p.per_anchor[base + k]);
  }
  const acc_t g_j = p.grad_per_anchor[base + j];
  if (g_j != acc_t(0)) {
    out -= g_j * pair_term_grad(p.fn, p.reduce, pair_weight(p, base, j, k), -x_kj, p.per_anchor[base + j]);
  }
  return out;
}

}  // namespace prefopt::kernels
