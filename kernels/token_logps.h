// The token_logps operator's C++ entry points and the input checks every backend shares. Internal to the
// library: users reach it through prefopt/scoring.h or torch.ops.prefopt.token_logps.
#pragma once

#include <tuple>

#include <ATen/core/Tensor.h>

#include "common/token_logps.h"

namespace prefopt::ops {

// logits [N, V] (fp32/bf16/fp16/fp64, vocabulary dimension contiguous or made so), labels [N] int64.
// Returns (logps [N], lse [N]) in the accumulation dtype (fp32, or fp64 for fp64 logits).
// inplace_backward: the backward writes the gradient into the logits' buffer instead of a new [N, V] tensor
// (taken only where that is safe: logits that are not a leaf, with a contiguous vocabulary dimension and no
// overlapping elements; otherwise the ordinary backward runs). The caller promises that nothing else reads
// those logits after this op's backward.
std::tuple<at::Tensor, at::Tensor> token_logps(const at::Tensor& logits, const at::Tensor& labels,
                                               int64_t ignore_index, double temperature,
                                               bool inplace_backward = false);

namespace detail {

// grad_logps [N] -> grad_logits [N, V] in the logits dtype.
at::Tensor token_logps_backward(const at::Tensor& grad_logps, const at::Tensor& logits, const at::Tensor& labels,
                                const at::Tensor& lse, int64_t ignore_index, double temperature);

// Writes the gradient into `logits` itself ([N, W], vocabulary dimension contiguous). The W columns may be the
// slice [label_offset, label_offset + W) of a vocabulary of `vocab` classes (vocab < 0: W): column j is class
// j + label_offset. Labels are range-checked only when the slice is the whole vocabulary.
void token_logps_backward_inplace(const at::Tensor& grad_logps, const at::Tensor& logits, const at::Tensor& labels,
                                  const at::Tensor& lse, int64_t ignore_index, double temperature,
                                  int64_t label_offset = 0, int64_t vocab = -1);

// Shape, dtype and device checks of the forward, with messages that name the argument.
void check_token_logps_inputs(const at::Tensor& logits, const at::Tensor& labels, double temperature);

// temperature > 0, finite, and 1/temperature finite in float32; every operator with a temperature runs it.
void check_temperature(double temperature);

// The same for the backward's extra inputs.
void check_token_logps_backward_inputs(const at::Tensor& grad_logps, const at::Tensor& logits,
                                       const at::Tensor& labels, const at::Tensor& lse);

// The in-place backward's extra conditions (writable layout, a slice that fits its vocabulary).
void check_token_logps_inplace_inputs(const at::Tensor& logits, int64_t label_offset, int64_t vocab);

// The kernels need the vocabulary dimension contiguous; anything else is copied once.
at::Tensor vocab_contiguous(const at::Tensor& logits);

// The kernel parameters of the forward and the backward, shared by the CPU and CUDA kernels: logits [N, V] with a
// contiguous vocabulary, outputs allocated by the caller in acc_t (the backward's grad_logits in scalar_t).
template <typename scalar_t, typename acc_t>
kernels::TokenLogpsParams<scalar_t, acc_t> make_token_logps_params(const at::Tensor& logits, const at::Tensor& labels,
                                                                  int64_t ignore_index, double temperature,
                                                                  at::Tensor& logps, at::Tensor& lse) {
  kernels::TokenLogpsParams<scalar_t, acc_t> p{};
  p.logits = logits.const_data_ptr<scalar_t>();
  p.labels = labels.const_data_ptr<int64_t>();
  p.rows = logits.size(0);
  p.vocab = logits.size(1);
  p.logits_row_stride = logits.stride(0);
  p.labels_stride = labels.stride(0);
  p.ignore_index = ignore_index;
  p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
  p.logps = logps.mutable_data_ptr<acc_t>();
  p.lse = lse.mutable_data_ptr<acc_t>();
  return p;
}

template <typename scalar_t, typename acc_t>
kernels::TokenLogpsBackwardParams<scalar_t, acc_t> make_token_logps_backward_params(
    const at::Tensor& grad_logps, const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& lse,
    int64_t ignore_index, double temperature, const at::Tensor& grad_logits, int64_t label_offset,
    bool check_labels) {
  kernels::TokenLogpsBackwardParams<scalar_t, acc_t> p{};
  p.logits = logits.const_data_ptr<scalar_t>();
  p.labels = labels.const_data_ptr<int64_t>();
  p.grad_logps = grad_logps.const_data_ptr<acc_t>();
  p.lse = lse.const_data_ptr<acc_t>();
  p.grad_logits = grad_logits.mutable_data_ptr<scalar_t>();
  p.rows = logits.size(0);
  p.vocab = logits.size(1);
  p.logits_row_stride = logits.stride(0);
  p.labels_stride = labels.stride(0);
  p.grad_stride = grad_logits.stride(0);
  p.ignore_index = ignore_index;
  p.label_offset = label_offset;
  p.check_labels = check_labels;
  p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
  return p;
}

}  // namespace detail
}  // namespace prefopt::ops
