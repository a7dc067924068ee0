// The fused_linear_logps operator's C++ entry points, checks and the device-generic chunked implementation
// that the CPU and CUDA registrations share. Internal: users reach it through prefopt/scoring.h or
// torch.ops.prefopt.fused_linear_logps.
#pragma once

#include <array>
#include <tuple>

#include <ATen/core/Tensor.h>

namespace prefopt::ops {

// The default memory budget of one chunk of logits (and of the backward's gradient chunk): 128 MiB.
constexpr int64_t kDefaultFusedLinearChunkBytes = int64_t{128} << 20;

// hidden [N, H], weight [V, H] (same floating dtype and device), labels [N] int64. Returns (logps [N], lse [N])
// in the accumulation dtype: log softmax(hidden weight^T / T)[label], 0 where ignored, without ever holding
// more than chunk_bytes of logits. Differentiable w.r.t. hidden and weight.
std::tuple<at::Tensor, at::Tensor> fused_linear_logps(const at::Tensor& hidden, const at::Tensor& weight,
                                                      const at::Tensor& labels, int64_t ignore_index,
                                                      double temperature, int64_t chunk_bytes);

namespace detail {

// (grad_hidden, grad_weight), each undefined where output_mask says it is not needed.
std::tuple<at::Tensor, at::Tensor> fused_linear_logps_backward(const at::Tensor& grad_logps, const at::Tensor& hidden,
                                                               const at::Tensor& weight, const at::Tensor& labels,
                                                               const at::Tensor& lse, int64_t ignore_index,
                                                               double temperature, int64_t chunk_bytes,
                                                               std::array<bool, 2> output_mask);

void check_fused_linear_logps_inputs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                     double temperature, int64_t chunk_bytes);

// The chunked implementations behind the CPU and CUDA kernels: ATen matmuls on chunks of rows (forward) or of
// the vocabulary (backward) and the token_logps kernels on each chunk.
std::tuple<at::Tensor, at::Tensor> fused_linear_logps_forward_impl(const at::Tensor& hidden, const at::Tensor& weight,
                                                                   const at::Tensor& labels, int64_t ignore_index,
                                                                   double temperature, int64_t chunk_bytes);
std::tuple<at::Tensor, at::Tensor> fused_linear_logps_backward_impl(const at::Tensor& grad_logps,
                                                                    const at::Tensor& hidden, const at::Tensor& weight,
                                                                    const at::Tensor& labels, const at::Tensor& lse,
                                                                    int64_t ignore_index, double temperature,
                                                                    int64_t chunk_bytes,
                                                                    std::array<bool, 2> output_mask);

}  // namespace detail
}  // namespace prefopt::ops
