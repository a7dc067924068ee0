// The token_logps operator's C++ entry points and the input checks every backend shares. Internal to the
// library: users reach it through prefopt/scoring.h or torch.ops.prefopt.token_logps.
#pragma once

#include <tuple>

#include <ATen/core/Tensor.h>

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

}  // namespace detail
}  // namespace prefopt::ops
