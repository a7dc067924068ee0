// Vectorised CPU row loop of token_entropy, compiled once per instruction set: each row read once, block by
// block (max pass from memory, exp pass from L1), into the EntropyRowState of common/token_entropy.h.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>

#include "../common/token_entropy.h"
#include "../common/token_kl.h"
#include "token_logps_rows.h"
#include "vec_io.h"

namespace prefopt::kernels::cpu {
namespace CPU_CAPABILITY {

template <typename scalar_t, typename acc_t>
EntropyRowState<acc_t> entropy_row(const scalar_t* row, int64_t vocab, acc_t inv_t) {
  using IO = VecIO<scalar_t>;
  using Vec = typename IO::Vec;
  auto state = EntropyRowState<acc_t>::empty();
  const Vec vinv(inv_t), vlow(lowest_finite<acc_t>());
  for (int64_t b0 = 0; b0 < vocab; b0 += kRowBlock) {
    const int64_t b1 = std::min(vocab, b0 + kRowBlock);
    const acc_t m = block_max(row, b0, b1) * inv_t;
    if (m == neg_infinity<acc_t>()) continue;
    const Vec vm(m);
    Vec s(acc_t(0)), t(acc_t(0));
    int64_t j = b0;
    for (; j + IO::kStep <= b1; j += IO::kStep) {
      Vec a, b;
      IO::load2(row + j, a, b);
      const Vec da = at::vec::fmsub(a, vinv, vm), db = at::vec::fmsub(b, vinv, vm);
      const Vec ea = exp_sum(da), eb = exp_sum(db);
      s = s + ea + eb;
      // entropy_term lane-wise: d clamped to the lowest finite value, so exp(-inf) * (-inf) gives 0.
      t = t + ea * at::vec::maximum(da, vlow) + eb * at::vec::maximum(db, vlow);
    }
    EntropyRowState<acc_t> block{m, hsum(s), hsum(t)};
    for (; j < b1; ++j) {
      const acc_t d = static_cast<acc_t>(row[j]) * inv_t - m;
      const acc_t e = fexp(d);
      block.sum += e;
      block.t += entropy_term(e, d);
    }
    state.merge(block);
  }
  return state;
}

template <typename scalar_t, typename acc_t>
void token_entropy_forward(const TokenEntropyParams<scalar_t, acc_t>& p) {
  at::parallel_for(0, p.rows, grain_rows(p.vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (row_ignored(p.labels, p.labels_stride, r, p.ignore_index)) {
        p.entropy[r] = acc_t(0);
        continue;
      }
      p.entropy[r] = entropy_row(p.logits + r * p.logits_row_stride, p.vocab, p.inv_temperature).entropy();
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace prefopt::kernels::cpu
