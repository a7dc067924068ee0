// CUDA kernel of token_logps: one block per row, each thread folding a strided slice of the row into an
// online log-sum-exp (fp32 accumulation, fp64 for fp64), then a warp-shuffle and shared-memory merge. The row
// is read once in its own dtype; no log-softmax and no upcast copy exists. Backward recomputes the softmax
// from the saved LSE and writes the gradient in one more pass. Labels outside [0, V) that are not
// ignore_index trip a device-side assert (documented in scoring.h): checking on the host would cost a sync.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/macros/Macros.h>
#include <torch/library.h>

#include "../common/token_logps.h"
#include "../token_logps.h"

namespace prefopt::ops {
namespace {

using kernels::OnlineLogSumExp;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename acc_t>
__device__ OnlineLogSumExp<acc_t> warp_merge(OnlineLogSumExp<acc_t> v) {
  for (int offset = 16; offset > 0; offset /= 2) {
    OnlineLogSumExp<acc_t> other{__shfl_down_sync(0xffffffffu, v.max, offset),
                                 __shfl_down_sync(0xffffffffu, v.sum, offset)};
    v.merge(other);
  }
  return v;
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) token_logps_forward_kernel(kernels::TokenLogpsParams<scalar_t, acc_t> p) {
  const int64_t r = blockIdx.x;
  const int64_t label = p.labels[r * p.labels_stride];
  if (label == p.ignore_index) {
    if (threadIdx.x == 0) {
      p.logps[r] = acc_t(0);
      p.lse[r] = acc_t(0);
    }
    return;
  }
  CUDA_KERNEL_ASSERT(kernels::label_in_range(label, p.vocab) && "token_logps: label out of range");
  const scalar_t* row = p.logits + r * p.logits_row_stride;
  auto acc = OnlineLogSumExp<acc_t>::empty();
  for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) {
    acc.add(static_cast<acc_t>(row[j]) * p.inv_temperature);
  }
  acc = warp_merge(acc);
  __shared__ acc_t s_max[kWarps];
  __shared__ acc_t s_sum[kWarps];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) {
    s_max[warp] = acc.max;
    s_sum[warp] = acc.sum;
  }
  __syncthreads();
  if (warp == 0) {
    acc = lane < kWarps ? OnlineLogSumExp<acc_t>{s_max[lane], s_sum[lane]} : OnlineLogSumExp<acc_t>::empty();
    acc = warp_merge(acc);
    if (lane == 0) {
      const acc_t lse = acc.value();
      p.lse[r] = lse;
      p.logps[r] = static_cast<acc_t>(row[label]) * p.inv_temperature - lse;
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) token_logps_backward_kernel(kernels::TokenLogpsBackwardParams<scalar_t, acc_t> p) {
  const int64_t r = blockIdx.x;
  scalar_t* out = p.grad_logits + r * p.grad_stride;
  const int64_t label = p.labels[r * p.labels_stride];
  const acc_t g = p.grad_logps[r];
  if (label == p.ignore_index || g == acc_t(0)) {
    for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) out[j] = scalar_t(0);
    return;
  }
  CUDA_KERNEL_ASSERT(kernels::label_in_range(label, p.vocab) && "token_logps: label out of range");
  const scalar_t* row = p.logits + r * p.logits_row_stride;
  const acc_t lse = p.lse[r];
  for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) {
    out[j] = static_cast<scalar_t>(
        kernels::token_logps_grad<acc_t>(static_cast<acc_t>(row[j]), j == label, lse, g, p.inv_temperature));
  }
}

std::tuple<at::Tensor, at::Tensor> token_logps_cuda(const at::Tensor& logits_in, const at::Tensor& labels,
                                                    int64_t ignore_index, double temperature) {
  detail::check_token_logps_inputs(logits_in, labels, temperature);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  const auto acc_dtype = at::toOpMathType(logits.scalar_type());
  at::Tensor logps = at::empty({logits.size(0)}, logits.options().dtype(acc_dtype));
  at::Tensor lse = at::empty({logits.size(0)}, logits.options().dtype(acc_dtype));
  if (logits.size(0) == 0) return {logps, lse};
  TORCH_CHECK(logits.size(0) <= int64_t{2147483647}, "logits has ", logits.size(0),
              " rows; the CUDA kernel supports at most 2^31 - 1");
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_logps_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
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
    token_logps_forward_kernel<scalar_t, acc_t><<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {logps, lse};
}

at::Tensor token_logps_backward_cuda(const at::Tensor& grad_logps_in, const at::Tensor& logits_in,
                                     const at::Tensor& labels, const at::Tensor& lse_in, int64_t ignore_index,
                                     double temperature) {
  detail::check_token_logps_inputs(logits_in, labels, temperature);
  detail::check_token_logps_backward_inputs(grad_logps_in, logits_in, labels, lse_in);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  const auto acc_dtype = at::toOpMathType(logits.scalar_type());
  const at::Tensor grad_logps = grad_logps_in.to(acc_dtype).contiguous();
  const at::Tensor lse = lse_in.contiguous();
  at::Tensor grad_logits = at::empty(logits.sizes(), logits.options().memory_format(at::MemoryFormat::Contiguous));
  if (logits.size(0) == 0) return grad_logits;
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_logps_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
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
    p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
    token_logps_backward_kernel<scalar_t, acc_t><<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CUDA, m) {
  m.impl("token_logps", &token_logps_cuda);
  m.impl("_token_logps_backward", &token_logps_backward_cuda);
}

}  // namespace prefopt::ops
