// The per-row math of token_logps, shared by the CPU and CUDA kernels: the parameters a kernel sees
// (raw pointers, sizes, strides; never an at::Tensor), the log-prob of the label from a row's LSE, and the
// gradient of one logit. The softmax row is never stored: backward recomputes it from the saved LSE.
#pragma once

#include <cstdint>

#include "host_device.h"
#include "online_logsumexp.h"

namespace prefopt::kernels {

// logits[r, j] lives at logits + r * logits_row_stride + j (the vocabulary dimension is contiguous).
template <typename scalar_t, typename acc_t>
struct TokenLogpsParams {
  const scalar_t* logits;
  const int64_t* labels;
  int64_t rows;
  int64_t vocab;
  int64_t logits_row_stride;
  int64_t labels_stride;
  int64_t ignore_index;
  acc_t inv_temperature;
  acc_t* logps;  // [rows], 0 where the label is ignore_index
  acc_t* lse;    // [rows], LSE of logits/temperature; 0 where ignored (the row is not read)
};

// The backward reads logits (a row of `vocab` columns that may be a slice [label_offset, label_offset + vocab)
// of a wider vocabulary, as the fused-linear path uses) and writes grad_logits, which may alias logits
// (in-place backward): every element is read before it is written, by the same thread.
template <typename scalar_t, typename acc_t>
struct TokenLogpsBackwardParams {
  const scalar_t* logits;
  const int64_t* labels;
  const acc_t* grad_logps;  // [rows]
  const acc_t* lse;         // [rows], from the forward
  scalar_t* grad_logits;    // [rows, vocab]
  int64_t rows;
  int64_t vocab;
  int64_t logits_row_stride;
  int64_t labels_stride;
  int64_t grad_stride;
  int64_t ignore_index;
  int64_t label_offset;  // column j is class j + label_offset
  bool check_labels;     // the row is the whole vocabulary: a label outside it is an error
  acc_t inv_temperature;
};

// log softmax(x)_label as (x_label - max) - log(sum): subtracting the row max first keeps the result exact to
// float32's relative precision even when |x| is large (x - lse would lose |lse| * 2^-24, ~1e-3 at |x| ~ 1e4).
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t label_logp(acc_t x_label, const OnlineLogSumExp<acc_t>& row) {
  return (x_label - row.max) - flog(row.sum);
}

PREFOPT_HOST_DEVICE bool label_in_range(int64_t label, int64_t vocab) {
  return label >= 0 && label < vocab;
}

// d logp / d x_j = (1[j == y] - softmax(x / T)_j) / T, softmax recomputed from the saved LSE.
template <typename acc_t>
PREFOPT_HOST_DEVICE acc_t token_logps_grad(acc_t x, bool is_label, acc_t lse, acc_t grad_logp, acc_t inv_temperature) {
  const acc_t p = fexp(x * inv_temperature - lse);
  return grad_logp * inv_temperature * ((is_label ? acc_t(1) : acc_t(0)) - p);
}

// The same for a column that is not the label, written for a scalar or a CPU vector of logits:
// -g/T * exp(x/T - lse). The CPU kernel applies it lane-wise and fixes the label column with the above.
template <typename T>
PREFOPT_HOST_DEVICE T token_logps_grad_off_label(T x, T lse, T grad_over_t, T inv_temperature) {
  return T(0) - grad_over_t * fexp(x * inv_temperature - lse);
}

}  // namespace prefopt::kernels
