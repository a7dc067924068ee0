// Vectorised CPU row loops of token_logps (forward and backward), compiled once per instruction set by the
// capability_*.cpp files. Forward: each row is read once, in blocks of kRowBlock elements: a max pass from
// memory, then an exp-sum pass over the same block from L1, merged into the row's online log-sum-exp
// (common/online_logsumexp.h). bf16/fp16 are widened in registers: no upcast copy, no log-softmax row.
// Backward: one more read of the row writes g/T (onehot - exp(x/T - lse)), in place when asked.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <type_traits>

#include "../common/token_logps.h"
#include "vec_io.h"

namespace prefopt::kernels::cpu {
namespace CPU_CAPABILITY {

// Rows per task: enough work per task to amortise scheduling when rows are short.
inline int64_t grain_rows(int64_t vocab) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(vocab, 1)); }

// The online log-sum-exp of row[0, vocab) / T, a block at a time: a max pass from memory, then an exp pass over
// the same block from L1. A bf16/fp16 block is widened once, in the max pass, into a float block on the stack, so
// the exp pass (the costly one: the forward is compute-bound on this CPU) reads floats and converts nothing.
template <typename scalar_t, typename acc_t>
OnlineLogSumExp<acc_t> row_logsumexp(const scalar_t* row, int64_t vocab, acc_t inv_t) {
  auto state = OnlineLogSumExp<acc_t>::empty();
  constexpr bool kWiden = !std::is_same_v<scalar_t, acc_t>;
  alignas(64) acc_t widened[kWiden ? kRowBlock : 1];
  for (int64_t b0 = 0; b0 < vocab; b0 += kRowBlock) {
    const int64_t b1 = std::min(vocab, b0 + kRowBlock);
    acc_t m;
    const acc_t* block;
    if constexpr (kWiden) {
      m = widen_block_max(row, b0, b1, widened) * inv_t;
      block = widened;
    } else {
      m = block_max(row, b0, b1) * inv_t;
      block = row + b0;
    }
    if (m == neg_infinity<acc_t>()) continue;  // no mass in this block
    using IO = VecIO<acc_t>;
    using Vec = typename IO::Vec;
    const Vec vinv(inv_t), vm(m);
    Vec sa(acc_t(0)), sb(acc_t(0));
    const int64_t n = b1 - b0;
    int64_t j = 0;
    for (; j + IO::kStep <= n; j += IO::kStep) {
      Vec a, b;
      IO::load2(block + j, a, b);
      sa = sa + exp_sum(at::vec::fmsub(a, vinv, vm));
      sb = sb + exp_sum(at::vec::fmsub(b, vinv, vm));
    }
    acc_t s = hsum(sa + sb);
    for (; j < n; ++j) s += fexp(block[j] * inv_t - m);
    state.merge(OnlineLogSumExp<acc_t>{m, s});
  }
  return state;
}

inline void check_label(int64_t label, int64_t r, int64_t vocab, int64_t ignore_index) {
  TORCH_CHECK(label_in_range(label, vocab), "labels[", r, "] = ", label,
              " is out of range: expected a class index in [0, ", vocab, ") or ignore_index (", ignore_index, ")");
}

template <typename scalar_t, typename acc_t>
void token_logps_forward(const TokenLogpsParams<scalar_t, acc_t>& p) {
  at::parallel_for(0, p.rows, grain_rows(p.vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t label = p.labels[r * p.labels_stride];
      if (label == p.ignore_index) {
        p.logps[r] = acc_t(0);
        p.lse[r] = acc_t(0);
        continue;
      }
      check_label(label, r, p.vocab, p.ignore_index);
      const scalar_t* row = p.logits + r * p.logits_row_stride;
      const auto acc = row_logsumexp(row, p.vocab, p.inv_temperature);
      p.lse[r] = acc.value();
      p.logps[r] = label_logp(static_cast<acc_t>(row[label]) * p.inv_temperature, acc);
    }
  });
}

template <typename scalar_t, typename acc_t>
void token_logps_backward(const TokenLogpsBackwardParams<scalar_t, acc_t>& p) {
  using IO = VecIO<scalar_t>;
  using Vec = typename IO::Vec;
  at::parallel_for(0, p.rows, grain_rows(p.vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      scalar_t* out = p.grad_logits + r * p.grad_stride;
      const int64_t label = p.labels[r * p.labels_stride];
      const acc_t g = p.grad_logps[r];
      if (label == p.ignore_index || g == acc_t(0)) {
        std::fill(out, out + p.vocab, scalar_t(0));
        continue;
      }
      if (p.check_labels) check_label(label, r, p.vocab, p.ignore_index);
      const scalar_t* row = p.logits + r * p.logits_row_stride;
      const acc_t lse = p.lse[r];
      const int64_t col = label - p.label_offset;  // the label's column in this (slice of the) row
      const bool has_label = col >= 0 && col < p.vocab;
      // Read before the loop: with an in-place backward, out aliases row.
      const acc_t x_label = has_label ? static_cast<acc_t>(row[col]) : acc_t(0);
      const acc_t gt = g * p.inv_temperature;
      const Vec vlse(lse), vgt(gt), vinv(p.inv_temperature);
      int64_t j = 0;
      for (; j + IO::kStep <= p.vocab; j += IO::kStep) {
        Vec a, b;
        IO::load2(row + j, a, b);
        IO::store2(out + j, token_logps_grad_off_label(a, vlse, vgt, vinv),
                   token_logps_grad_off_label(b, vlse, vgt, vinv));
      }
      for (; j < p.vocab; ++j) {
        out[j] = static_cast<scalar_t>(
            token_logps_grad_off_label(static_cast<acc_t>(row[j]), lse, gt, p.inv_temperature));
      }
      if (has_label) {
        out[col] = static_cast<scalar_t>(token_logps_grad<acc_t>(x_label, true, lse, g, p.inv_temperature));
      }
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace prefopt::kernels::cpu
