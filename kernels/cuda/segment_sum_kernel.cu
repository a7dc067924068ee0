// CUDA kernel of segment_sum: one 256-thread block per segment, the threads striding over its tokens and merging
// their partial sums with the block merge of reduce.cuh, in the accumulation dtype (fp32, fp64 for fp64 values).
// The offsets were validated on the host by the shared checks. Device guard, current stream, launch check.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../segment_sum.h"
#include "reduce.cuh"

namespace prefopt::ops {
namespace {

namespace kc = kernels::cuda;

constexpr int kThreads = 256;

template <typename acc_t>
struct SumState {
  using acc_type = acc_t;
  acc_t value;
};

struct SumMerge {
  template <typename S>
  __device__ void operator()(S& a, const S& b) const {
    a.value += b.value;
  }
};

template <typename scalar_t, typename acc_t>
__global__ void segment_sum_kernel(const scalar_t* __restrict__ values, const int64_t* __restrict__ offsets,
                                   acc_t* __restrict__ out) {
  const int64_t segment = blockIdx.x;
  const int64_t begin = offsets[segment], end = offsets[segment + 1];
  SumState<acc_t> s{acc_t(0)};
  for (int64_t t = begin + threadIdx.x; t < end; t += kThreads) s.value += static_cast<acc_t>(values[t]);
  s = kc::block_merge<kThreads>(s, SumState<acc_t>{acc_t(0)}, SumMerge{});
  if (threadIdx.x == 0) out[segment] = s.value;
}

at::Tensor segment_sum_cuda(const at::Tensor& values_in, const at::Tensor& cu_seqlens) {
  detail::check_segment_sum_inputs(values_in, cu_seqlens);
  const c10::cuda::CUDAGuard device_guard(values_in.device());
  const auto acc = at::toOpMathType(values_in.scalar_type());
  const int64_t n = cu_seqlens.size(0) - 1;
  at::Tensor out = at::empty({n}, values_in.options().dtype(acc));
  if (n == 0) return out;
  const at::Tensor values = values_in.contiguous();
  const at::Tensor offsets = cu_seqlens.to(at::kLong).contiguous();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, values.scalar_type(), "segment_sum_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    segment_sum_kernel<scalar_t, acc_t><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
        values.const_data_ptr<scalar_t>(), offsets.const_data_ptr<int64_t>(), out.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CUDA, m) { m.impl("segment_sum", &segment_sum_cuda); }

}  // namespace prefopt::ops
