// Vectorised CPU row loop of wpo_token_stats, compiled once per instruction set: each row read once, block by
// block, into the WpoRowState of common/wpo_token_stats.h (one exp per entry feeds both LSE(z) and LSE(2z)).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>

#include "../common/wpo_token_stats.h"
#include "token_logps_rows.h"
#include "vec_io.h"

namespace prefopt::kernels::cpu {
namespace CPU_CAPABILITY {

template <typename scalar_t, typename acc_t>
WpoRowState<acc_t> wpo_row(const scalar_t* row, int64_t vocab, acc_t inv_t) {
  using IO = VecIO<scalar_t>;
  using Vec = typename IO::Vec;
  auto state = WpoRowState<acc_t>::empty();
  const Vec vinv(inv_t);
  for (int64_t b0 = 0; b0 < vocab; b0 += kRowBlock) {
    const int64_t b1 = std::min(vocab, b0 + kRowBlock);
    const acc_t m = block_max(row, b0, b1) * inv_t;
    if (m == neg_infinity<acc_t>()) continue;
    const Vec vm(m);
    Vec s1(acc_t(0)), s2(acc_t(0));
    int64_t j = b0;
    for (; j + IO::kStep <= b1; j += IO::kStep) {
      Vec a, b;
      IO::load2(row + j, a, b);
      const Vec ea = exp_sum(at::vec::fmsub(a, vinv, vm)), eb = exp_sum(at::vec::fmsub(b, vinv, vm));
      s1 = s1 + ea + eb;
      s2 = at::vec::fmadd(ea, ea, s2);
      s2 = at::vec::fmadd(eb, eb, s2);
    }
    WpoRowState<acc_t> block{m, hsum(s1), hsum(s2)};
    for (; j < b1; ++j) {
      const acc_t e = fexp(static_cast<acc_t>(row[j]) * inv_t - m);
      block.s1 += e;
      block.s2 += e * e;
    }
    state.merge(block);
  }
  return state;
}

template <typename scalar_t, typename acc_t>
void wpo_token_stats_forward(const WpoTokenStatsParams<scalar_t, acc_t>& p) {
  at::parallel_for(0, p.rows, grain_rows(p.vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t label = p.labels[r * p.labels_stride];
      if (label == p.ignore_index) {
        p.log_weight[r] = acc_t(0);
        p.logps[r] = acc_t(0);
        p.lse[r] = acc_t(0);
        p.lse2[r] = acc_t(0);
        continue;
      }
      check_label(label, r, p.vocab, p.ignore_index);
      const scalar_t* row = p.logits + r * p.logits_row_stride;
      const auto state = wpo_row(row, p.vocab, p.inv_temperature);
      const acc_t z_label = static_cast<acc_t>(row[label]) * p.inv_temperature;
      p.lse[r] = state.lse();
      p.lse2[r] = state.lse2();
      p.logps[r] = z_label - p.lse[r];
      p.log_weight[r] = state.log_weight(z_label);
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace prefopt::kernels::cpu
