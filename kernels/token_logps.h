// The token_logps operator's C++ entry points and the input checks every backend shares. Internal to the
// library: users reach it through prefopt/scoring.h or torch.ops.prefopt.token_logps.
#pragma once

#include <tuple>

#include <ATen/core/Tensor.h>

namespace prefopt::ops {

// logits [N, V] (fp32/bf16/fp16/fp64, vocabulary dimension contiguous or made so), labels [N] int64.
// Returns (logps [N], lse [N]) in the accumulation dtype (fp32, or fp64 for fp64 logits).
std::tuple<at::Tensor, at::Tensor> token_logps(const at::Tensor& logits, const at::Tensor& labels,
                                               int64_t ignore_index, double temperature);

namespace detail {

// grad_logps [N] -> grad_logits [N, V] in the logits dtype.
at::Tensor token_logps_backward(const at::Tensor& grad_logps, const at::Tensor& logits, const at::Tensor& labels,
                                const at::Tensor& lse, int64_t ignore_index, double temperature);

// Shape, dtype and device checks of the forward, with messages that name the argument.
void check_token_logps_inputs(const at::Tensor& logits, const at::Tensor& labels, double temperature);

// The same for the backward's extra inputs.
void check_token_logps_backward_inputs(const at::Tensor& grad_logps, const at::Tensor& logits,
                                       const at::Tensor& labels, const at::Tensor& lse);

// The kernels need the vocabulary dimension contiguous; anything else is copied once.
at::Tensor vocab_contiguous(const at::Tensor& logits);

}  // namespace detail
}  // namespace prefopt::ops
