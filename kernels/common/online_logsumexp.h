// The online log-sum-exp of a row: a running (max, sum of exp(x - max)) pair that absorbs one value or
// another partial pair at a time, so a row's LSE comes from a single read in any order or split. It never
// holds the row, and it accumulates in the type it is instantiated with (fp32 for fp32/bf16/fp16 input).
#pragma once

#include "host_device.h"

namespace prefopt::kernels {

template <typename acc_t>
struct OnlineLogSumExp {
  using acc_type = acc_t;
  acc_t max;
  acc_t sum;  // sum of exp(x - max) over the values absorbed so far

  PREFOPT_HOST_DEVICE static OnlineLogSumExp empty() { return {neg_infinity<acc_t>(), acc_t(0)}; }

  PREFOPT_HOST_DEVICE void add(acc_t x) {
    // -inf carries no mass; skipping it also avoids (-inf) - (-inf) = NaN while max is still -inf.
    if (x == neg_infinity<acc_t>()) return;
    if (x > max) {
      sum = sum * fexp(max - x) + acc_t(1);
      max = x;
    } else {
      sum += fexp(x - max);
    }
  }

  PREFOPT_HOST_DEVICE void merge(const OnlineLogSumExp& other) {
    if (other.max == neg_infinity<acc_t>()) return;
    if (max == neg_infinity<acc_t>()) {
      *this = other;
      return;
    }
    const acc_t m = max > other.max ? max : other.max;
    sum = sum * fexp(max - m) + other.sum * fexp(other.max - m);
    max = m;
  }

  // -inf for a row with no finite mass; the caller decides what that means.
  PREFOPT_HOST_DEVICE acc_t value() const { return max + flog(sum); }
};

}  // namespace prefopt::kernels
