// The per-row math of token_kl: KL(ref || policy) over a vocabulary row, from one read of both rows.
// A row state holds the online log-sum-exp of each row and the cross term sum_v exp(zr_v - mr) (zr_v - zp_v),
// kept relative to the running reference max, so
//   KL = sum_v p_ref(v) (log p_ref(v) - log p_pol(v)) = cross / sr - LSE(zr) + LSE(zp)
// needs neither probability row in memory. The backward needs only the two LSEs:
//   d KL / d zp_v = p_pol(v) - p_ref(v)   (reference detached).
// Shared by the CPU and CUDA kernels.
#pragma once

#include <cstdint>

#include "host_device.h"
#include "online_logsumexp.h"

namespace prefopt::kernels {

template <typename scalar_t, typename acc_t>
struct TokenKlParams {
  const scalar_t* policy;
  const scalar_t* ref;
  const int64_t* labels;  // may be null: every row is scored
  int64_t rows;
  int64_t vocab;
  int64_t policy_row_stride;
  int64_t ref_row_stride;
  int64_t labels_stride;
  int64_t ignore_index;
  acc_t inv_temperature;
  acc_t* kl;          // [rows], 0 where ignored
  acc_t* policy_lse;  // [rows], 0 where ignored
  acc_t* ref_lse;     // [rows], 0 where ignored
};

template <typename scalar_t, typename acc_t>
struct TokenKlBackwardParams {
  const scalar_t* policy;
  const scalar_t* ref;
  const int64_t* labels;  // may be null
  const acc_t* grad_kl;
  const acc_t* policy_lse;
  const acc_t* ref_lse;
  scalar_t* grad_policy;  // [rows, vocab], contiguous
  int64_t rows;
  int64_t vocab;
  int64_t policy_row_stride;
  int64_t ref_row_stride;
  int64_t labels_stride;
  int64_t grad_stride;
  int64_t ignore_index;
  acc_t inv_temperature;
};

PREFOPT_HOST_DEVICE bool row_ignored(const int64_t* labels, int64_t stride, int64_t r, int64_t ignore_index) {
  return labels != nullptr && labels[r * stride] == ignore_index;
}

// p_ref(v) (zr - zp) with the convention 0 * anything = 0: a vocabulary entry the reference gives no mass
// contributes nothing, even where both logits are -inf.
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t kl_cross_term(acc_t w, acc_t zr, acc_t zp) {
  return w == acc_t(0) ? acc_t(0) : w * (zr - zp);
}

template <typename acc_t>
struct KlRowState {
  using acc_type = acc_t;
  acc_t ref_max;
  acc_t ref_sum;    // sum exp(zr - ref_max)
  acc_t cross;      // sum exp(zr - ref_max) (zr - zp)
  acc_t pol_max;
  acc_t pol_sum;    // sum exp(zp - pol_max)

  PREFOPT_HOST_DEVICE static KlRowState empty() {
    return {neg_infinity<acc_t>(), acc_t(0), acc_t(0), neg_infinity<acc_t>(), acc_t(0)};
  }

  // One vocabulary entry (zr, zp already divided by the temperature).
  PREFOPT_HOST_DEVICE void add(acc_t zr, acc_t zp) {
    OnlineLogSumExp<acc_t> pol{pol_max, pol_sum};
    pol.add(zp);
    pol_max = pol.max;
    pol_sum = pol.sum;
    if (zr == neg_infinity<acc_t>()) return;
    if (zr > ref_max) {
      const acc_t scale = fexp(ref_max - zr);
      ref_sum = ref_sum * scale + acc_t(1);
      cross = cross * scale + (zr - zp);
      ref_max = zr;
    } else {
      const acc_t w = fexp(zr - ref_max);
      ref_sum += w;
      cross += kl_cross_term(w, zr, zp);
    }
  }

  PREFOPT_HOST_DEVICE void merge(const KlRowState& o) {
    OnlineLogSumExp<acc_t> pol{pol_max, pol_sum};
    pol.merge(OnlineLogSumExp<acc_t>{o.pol_max, o.pol_sum});
    pol_max = pol.max;
    pol_sum = pol.sum;
    if (o.ref_max == neg_infinity<acc_t>()) return;
    if (ref_max == neg_infinity<acc_t>()) {
      ref_max = o.ref_max;
      ref_sum = o.ref_sum;
      cross = o.cross;
      return;
    }
    const acc_t m = ref_max > o.ref_max ? ref_max : o.ref_max;
    const acc_t a = fexp(ref_max - m);
    const acc_t b = fexp(o.ref_max - m);
    ref_sum = ref_sum * a + o.ref_sum * b;
    cross = cross * a + o.cross * b;
    ref_max = m;
  }

  PREFOPT_HOST_DEVICE acc_t ref_lse() const { return ref_max + flog(ref_sum); }
  PREFOPT_HOST_DEVICE acc_t policy_lse() const { return pol_max + flog(pol_sum); }
  // NaN when the reference row has no finite logit (no distribution to take the KL from).
  PREFOPT_HOST_DEVICE acc_t kl() const { return cross / ref_sum - ref_lse() + policy_lse(); }
};

// g/T (p_pol(v) - p_ref(v)) for one vocabulary entry, for a scalar or a CPU vector.
template <typename T>
PREFOPT_HOST_DEVICE T token_kl_grad(T xp, T xr, T policy_lse, T ref_lse, T grad_over_t, T inv_temperature) {
  return grad_over_t * (fexp(xp * inv_temperature - policy_lse) - fexp(xr * inv_temperature - ref_lse));
}

}  // namespace prefopt::kernels
