// The segment_sum operator: the per-sequence sums of per-token values of packed sequences, out[i] =
// sum_{t in [cu_seqlens[i], cu_seqlens[i+1])} values[t], the reduction that turns a packed batch's token log-probs,
// KLs and weights into the per-sequence scores a loss takes. Internal C++ entry point; users reach it through
// prefopt/scoring.h (segment_sum, packed_sequence_logps, ...) or torch.ops.prefopt.segment_sum. It never reads a
// vocabulary and never reorders tokens.
#pragma once

#include <ATen/core/Tensor.h>

namespace prefopt::ops {

// values [S] (fp32/bf16/fp16/fp64), cu_seqlens [N + 1] int64 (or int32): 0 = cu_seqlens[0] <= ... <=
// cu_seqlens[N] = S. Returns [N] in the accumulation dtype (fp32, fp64 for fp64 values); an empty segment sums
// to 0. Differentiable with respect to values (each token gets its segment's gradient).
at::Tensor segment_sum(const at::Tensor& values, const at::Tensor& cu_seqlens);

namespace detail {
// Shapes, dtypes, devices, and the offsets' values (read on the host: an [N + 1] tensor), with messages that name
// the argument and the offending index.
void check_segment_sum_inputs(const at::Tensor& values, const at::Tensor& cu_seqlens);
}  // namespace detail
}  // namespace prefopt::ops
