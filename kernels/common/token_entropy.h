// The per-row math of token_entropy: H = -sum_v p(v) log p(v) of softmax(z), z = logits / T, from one read
// of the row. The state keeps s = sum exp(z - m) and t = sum exp(z - m) (z - m) relative to the running max
// m, so H = log s - t / s without the cancellation of LSE(z) - E[z] at large logits. Shared by the CPU and
// CUDA kernels. A metric: no gradient.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace prefopt::kernels {

template <typename scalar_t, typename acc_t>
struct TokenEntropyParams {
  const scalar_t* logits;
  const int64_t* labels;  // may be null: every row is scored
  int64_t rows;
  int64_t vocab;
  int64_t logits_row_stride;
  int64_t labels_stride;
  int64_t ignore_index;
  acc_t inv_temperature;
  acc_t* entropy;  // [rows], 0 where ignored
};

// exp(d) d with 0 * (-inf) = 0: d is clamped to the lowest finite value first (exp of it is 0).
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t entropy_term(acc_t e, acc_t d) {
  return e * (d < lowest_finite<acc_t>() ? lowest_finite<acc_t>() : d);
}

template <typename acc_t>
struct EntropyRowState {
  using acc_type = acc_t;
  acc_t max;
  acc_t sum;  // sum exp(z - max)
  acc_t t;    // sum exp(z - max) (z - max)

  PREFOPT_HOST_DEVICE static EntropyRowState empty() { return {neg_infinity<acc_t>(), acc_t(0), acc_t(0)}; }

  PREFOPT_HOST_DEVICE void add(acc_t z) {
    if (z == neg_infinity<acc_t>()) return;
    if (z > max) {
      // Re-base: exp(z' - m_new) (z' - m_new) = a exp(z' - m) ((z' - m) - delta), a = exp(-delta).
      if (max == neg_infinity<acc_t>()) {
        max = z;
        sum = acc_t(1);
        t = acc_t(0);
        return;
      }
      const acc_t delta = z - max;
      const acc_t a = fexp(-delta);
      t = a * (t - delta * sum);
      sum = sum * a + acc_t(1);
      max = z;
    } else {
      const acc_t d = z - max;
      const acc_t e = fexp(d);
      sum += e;
      t += entropy_term(e, d);
    }
  }

  PREFOPT_HOST_DEVICE void merge(const EntropyRowState& o) {
    if (o.max == neg_infinity<acc_t>()) return;
    if (max == neg_infinity<acc_t>()) {
      *this = o;
      return;
    }
    const acc_t m = max > o.max ? max : o.max;
    const acc_t da = max - m;  // <= 0
    const acc_t db = o.max - m;
    const acc_t a = fexp(da);
    const acc_t b = fexp(db);
    t = a * (t + da * sum) + b * (o.t + db * o.sum);
    sum = sum * a + o.sum * b;
    max = m;
  }

  // NaN when the row has no finite logit.
  PREFOPT_HOST_DEVICE acc_t entropy() const { return flog(sum) - t / sum; }
};

}  // namespace prefopt::kernels
