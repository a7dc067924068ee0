// The per-row math of wpo_token_stats: from one read of a row, the label logit, LSE(z) and LSE(2z), which
// give WPO's per-token log-weight (LOSSES.md section 1)
//   log w_t = log p(y_t) - log sum_v p(v)^2 = z_y - LSE(z) - (LSE(2z) - 2 LSE(z)) = (z_y - m) + log s1 - log s2
// with s1 = sum exp(z - m), s2 = sum exp(z - m)^2 relative to the running max m: one exp per entry serves
// both sums. Shared by the CPU and CUDA kernels. The weights are detached by definition: no gradient.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace prefopt::kernels {

template <typename scalar_t, typename acc_t>
struct WpoTokenStatsParams {
  const scalar_t* logits;
  const int64_t* labels;
  int64_t rows;
  int64_t vocab;
  int64_t logits_row_stride;
  int64_t labels_stride;
  int64_t ignore_index;
  acc_t inv_temperature;
  acc_t* log_weight;  // [rows], 0 where ignored
  acc_t* logps;       // [rows], log p(label), 0 where ignored
  acc_t* lse;         // [rows], LSE(z), 0 where ignored
  acc_t* lse2;        // [rows], LSE(2z), 0 where ignored
};

template <typename acc_t>
struct WpoRowState {
  using acc_type = acc_t;
  acc_t max;
  acc_t s1;  // sum exp(z - max)
  acc_t s2;  // sum exp(z - max)^2 = sum exp(2z - 2 max)

  PREFOPT_HOST_DEVICE static WpoRowState empty() { return {neg_infinity<acc_t>(), acc_t(0), acc_t(0)}; }

  PREFOPT_HOST_DEVICE void add(acc_t z) {
    if (z == neg_infinity<acc_t>()) return;
    if (z > max) {
      const acc_t a = fexp(max - z);
      s1 = s1 * a + acc_t(1);
      s2 = s2 * a * a + acc_t(1);
      max = z;
    } else {
      const acc_t e = fexp(z - max);
      s1 += e;
      s2 += e * e;
    }
  }

  PREFOPT_HOST_DEVICE void merge(const WpoRowState& o) {
    if (o.max == neg_infinity<acc_t>()) return;
    if (max == neg_infinity<acc_t>()) {
      *this = o;
      return;
    }
    const acc_t m = max > o.max ? max : o.max;
    const acc_t a = fexp(max - m);
    const acc_t b = fexp(o.max - m);
    s1 = s1 * a + o.s1 * b;
    s2 = s2 * a * a + o.s2 * b * b;
    max = m;
  }

  PREFOPT_HOST_DEVICE acc_t lse() const { return max + flog(s1); }
  PREFOPT_HOST_DEVICE acc_t lse2() const { return acc_t(2) * max + flog(s2); }
  // z_label already divided by the temperature.
  PREFOPT_HOST_DEVICE acc_t log_weight(acc_t z_label) const { return (z_label - max) + flog(s1) - flog(s2); }
};

}  // namespace prefopt::kernels
