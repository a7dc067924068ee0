// CUDA registration of fused_linear_logps: the chunked implementation of fused_linear_logps.cpp under a device
// guard. Its matmuls are cuBLAS's (through ATen, on the current stream) and its per-chunk log-softmax work is the
// token_logps CUDA kernel; the bf16/fp16 grad_hidden accumulation uses mm with an fp32 result. No [N, V] tensor
// exists; see fused_linear_logps.cpp for the chunking. Bad labels trip token_logps' device-side assert.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../fused_linear_logps.h"

namespace prefopt::ops {
namespace {

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_cuda(const at::Tensor& hidden, const at::Tensor& weight,
                                                           const at::Tensor& labels, int64_t ignore_index,
                                                           double temperature, int64_t chunk_bytes) {
  const c10::cuda::CUDAGuard guard(hidden.device());
  return detail::fused_linear_logps_forward_impl(hidden, weight, labels, ignore_index, temperature, chunk_bytes);
}

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_backward_cuda(
    const at::Tensor& grad_logps, const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
    const at::Tensor& lse, int64_t ignore_index, double temperature, int64_t chunk_bytes,
    std::array<bool, 2> output_mask) {
  const c10::cuda::CUDAGuard guard(hidden.device());
  return detail::fused_linear_logps_backward_impl(grad_logps, hidden, weight, labels, lse, ignore_index, temperature,
                                                  chunk_bytes, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CUDA, m) {
  m.impl("fused_linear_logps", &fused_linear_logps_cuda);
  m.impl("_fused_linear_logps_backward", &fused_linear_logps_backward_cuda);
}

}  // namespace prefopt::ops
