// Vectorised CPU row loops of token_kl (forward and backward), compiled once per instruction set. Forward:
// the policy and reference rows are each read once, block by block (max pass from memory, exp pass from L1),
// into the KlRowState of common/token_kl.h; no probability row exists. Backward: one more read of both
// rows writes g/T (p_pol - p_ref) from the two saved LSEs.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>

#include "../common/token_kl.h"
#include "token_logps_rows.h"
#include "vec_io.h"

namespace prefopt::kernels::cpu {
namespace CPU_CAPABILITY {

template <typename scalar_t, typename acc_t>
KlRowState<acc_t> kl_row(const scalar_t* pol, const scalar_t* ref, int64_t vocab, acc_t inv_t) {
  using IO = VecIO<scalar_t>;
  using Vec = typename IO::Vec;
  auto state = KlRowState<acc_t>::empty();
  const Vec vinv(inv_t), zero(acc_t(0));
  for (int64_t b0 = 0; b0 < vocab; b0 += kRowBlock) {
    const int64_t b1 = std::min(vocab, b0 + kRowBlock);
    const acc_t mp = block_max(pol, b0, b1) * inv_t;
    const acc_t mr = block_max(ref, b0, b1) * inv_t;
    // A block whose max is -inf holds only -inf: any finite shift gives exp(-inf) = 0 for all of it.
    const acc_t mp_used = mp == neg_infinity<acc_t>() ? acc_t(0) : mp;
    const acc_t mr_used = mr == neg_infinity<acc_t>() ? acc_t(0) : mr;
    const Vec vmp(mp_used), vmr(mr_used);
    Vec sp(acc_t(0)), sr(acc_t(0)), cross(acc_t(0));
    int64_t j = b0;
    for (; j + IO::kStep <= b1; j += IO::kStep) {
      Vec pa, pb, ra, rb;
      IO::load2(pol + j, pa, pb);
      IO::load2(ref + j, ra, rb);
      const Vec zpa = pa * vinv, zpb = pb * vinv, zra = ra * vinv, zrb = rb * vinv;
      sp = sp + exp_sum(zpa - vmp) + exp_sum(zpb - vmp);
      const Vec wa = exp_sum(zra - vmr), wb = exp_sum(zrb - vmr);
      sr = sr + wa + wb;
      // kl_cross_term lane-wise: 0 where the reference has no mass.
      cross = cross + Vec::blendv(wa * (zra - zpa), zero, wa == zero) + Vec::blendv(wb * (zrb - zpb), zero, wb == zero);
    }
    KlRowState<acc_t> block{mr, hsum(sr), hsum(cross), mp, hsum(sp)};
    for (; j < b1; ++j) {
      const acc_t zp = static_cast<acc_t>(pol[j]) * inv_t;
      const acc_t zr = static_cast<acc_t>(ref[j]) * inv_t;
      block.pol_sum += fexp(zp - mp_used);
      const acc_t w = fexp(zr - mr_used);
      block.ref_sum += w;
      block.cross += kl_cross_term(w, zr, zp);
    }
    state.merge(block);
  }
  return state;
}

template <typename scalar_t, typename acc_t>
void token_kl_forward(const TokenKlParams<scalar_t, acc_t>& p) {
  at::parallel_for(0, p.rows, grain_rows(p.vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (row_ignored(p.labels, p.labels_stride, r, p.ignore_index)) {
        p.kl[r] = acc_t(0);
        p.policy_lse[r] = acc_t(0);
        p.ref_lse[r] = acc_t(0);
        continue;
      }
      const auto state =
          kl_row(p.policy + r * p.policy_row_stride, p.ref + r * p.ref_row_stride, p.vocab, p.inv_temperature);
      p.kl[r] = state.kl();
      p.policy_lse[r] = state.policy_lse();
      p.ref_lse[r] = state.ref_lse();
    }
  });
}

template <typename scalar_t, typename acc_t>
void token_kl_backward(const TokenKlBackwardParams<scalar_t, acc_t>& p) {
  using IO = VecIO<scalar_t>;
  using Vec = typename IO::Vec;
  at::parallel_for(0, p.rows, grain_rows(p.vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      scalar_t* out = p.grad_policy + r * p.grad_stride;
      const acc_t g = p.grad_kl[r];
      if (row_ignored(p.labels, p.labels_stride, r, p.ignore_index) || g == acc_t(0)) {
        std::fill(out, out + p.vocab, scalar_t(0));
        continue;
      }
      const scalar_t* pol = p.policy + r * p.policy_row_stride;
      const scalar_t* ref = p.ref + r * p.ref_row_stride;
      const acc_t lp = p.policy_lse[r], lr = p.ref_lse[r], gt = g * p.inv_temperature;
      const Vec vlp(lp), vlr(lr), vgt(gt), vinv(p.inv_temperature);
      int64_t j = 0;
      for (; j + IO::kStep <= p.vocab; j += IO::kStep) {
        Vec pa, pb, ra, rb;
        IO::load2(pol + j, pa, pb);
        IO::load2(ref + j, ra, rb);
        IO::store2(out + j, token_kl_grad(pa, ra, vlp, vlr, vgt, vinv), token_kl_grad(pb, rb, vlp, vlr, vgt, vinv));
      }
      for (; j < p.vocab; ++j) {
        out[j] = static_cast<scalar_t>(
            token_kl_grad(static_cast<acc_t>(pol[j]), static_cast<acc_t>(ref[j]), lp, lr, gt, p.inv_temperature));
      }
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace prefopt::kernels::cpu
