// CUDA kernel of token_logps: one block per row (one warp for vocabularies up to 1024, else 256 threads), each
// thread folding its 16-byte-vector slice of the row into an online log-sum-exp (fp32 accumulation, fp64 for
// fp64), then a shuffle + shared-memory merge with the same merge the CPU uses. The row is read once in its own
// dtype; no log-softmax and no upcast copy exists. Backward recomputes the softmax from the saved LSE and writes
// the gradient in one more pass, into a new tensor or (in place) over the logits. Labels outside [0, V) that are
// not ignore_index trip a device-side assert (documented in scoring.h): checking on the host would cost a sync.
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
#include "reduce.cuh"
#include "row_io.cuh"

namespace prefopt::ops {
namespace {

using kernels::OnlineLogSumExp;
namespace kc = kernels::cuda;

struct LseMerge {
  template <typename S>
  __device__ void operator()(S& a, const S& b) const {
    a.merge(b);
  }
};

template <int kThreads, typename scalar_t, typename acc_t>
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
  kc::for_each_element<kThreads>(row, p.vocab, [&](int64_t, scalar_t x) {
    acc.add(static_cast<acc_t>(x) * p.inv_temperature);
  });
  acc = kc::block_merge<kThreads>(acc, OnlineLogSumExp<acc_t>::empty(), LseMerge{});
  if (threadIdx.x == 0) {
    p.lse[r] = acc.value();
    p.logps[r] = kernels::label_logp(static_cast<acc_t>(row[label]) * p.inv_temperature, acc);
  }
}

template <int kThreads, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    token_logps_backward_kernel(kernels::TokenLogpsBackwardParams<scalar_t, acc_t> p) {
  const int64_t r = blockIdx.x;
  scalar_t* out = p.grad_logits + r * p.grad_stride;
  const int64_t label = p.labels[r * p.labels_stride];
  const acc_t g = p.grad_logps[r];
  if (label == p.ignore_index || g == acc_t(0)) {
    for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) out[j] = scalar_t(0);
    return;
  }
  if (p.check_labels) {
    CUDA_KERNEL_ASSERT(kernels::label_in_range(label, p.vocab) && "token_logps: label out of range");
  }
  const scalar_t* row = p.logits + r * p.logits_row_stride;
  const acc_t lse = p.lse[r];
  const int64_t col = label - p.label_offset;
  // Each element is read and then written by the same thread, so out may alias row (in-place backward).
  kc::transform_row<kThreads>(row, out, p.vocab, [&](int64_t j, scalar_t x) {
    return kernels::token_logps_grad<acc_t>(static_cast<acc_t>(x), j == col, lse, g, p.inv_temperature);
  });
}

template <typename Params, typename Launch>
void launch_by_vocab(const Params& p, Launch&& launch) {
  if (p.vocab <= kc::kWarpRowMaxVocab) {
    launch(std::integral_constant<int, 32>{});
  } else {
    launch(std::integral_constant<int, 256>{});
  }
}

std::tuple<at::Tensor, at::Tensor> token_logps_cuda(const at::Tensor& logits_in, const at::Tensor& labels,
                                                    int64_t ignore_index, double temperature,
                                                    bool /*inplace_backward*/) {
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
    auto p = detail::make_token_logps_params<scalar_t, acc_t>(logits, labels, ignore_index, temperature, logps, lse);
    launch_by_vocab(p, [&](auto threads) {
      constexpr int kThreads = decltype(threads)::value;
      token_logps_forward_kernel<kThreads, scalar_t, acc_t><<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {logps, lse};
}

void run_backward(const at::Tensor& grad_logps_in, const at::Tensor& logits, const at::Tensor& labels,
                  const at::Tensor& lse_in, int64_t ignore_index, double temperature, const at::Tensor& grad_logits,
                  int64_t label_offset, bool check_labels) {
  if (logits.size(0) == 0 || logits.size(1) == 0) return;
  TORCH_CHECK(logits.size(0) <= int64_t{2147483647}, "logits has ", logits.size(0),
              " rows; the CUDA kernel supports at most 2^31 - 1");
  const auto acc_dtype = at::toOpMathType(logits.scalar_type());
  const at::Tensor grad_logps = grad_logps_in.to(acc_dtype).contiguous();
  const at::Tensor lse = lse_in.contiguous();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_logps_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = detail::make_token_logps_backward_params<scalar_t, acc_t>(grad_logps, logits, labels, lse, ignore_index,
                                                                     temperature, grad_logits, label_offset,
                                                                     check_labels);
    launch_by_vocab(p, [&](auto threads) {
      constexpr int kThreads = decltype(threads)::value;
      token_logps_backward_kernel<kThreads, scalar_t, acc_t><<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

at::Tensor token_logps_backward_cuda(const at::Tensor& grad_logps, const at::Tensor& logits_in,
                                     const at::Tensor& labels, const at::Tensor& lse, int64_t ignore_index,
                                     double temperature) {
  detail::check_token_logps_inputs(logits_in, labels, temperature);
  detail::check_token_logps_backward_inputs(grad_logps, logits_in, labels, lse);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  at::Tensor grad_logits = at::empty(logits.sizes(), logits.options().memory_format(at::MemoryFormat::Contiguous));
  run_backward(grad_logps, logits, labels, lse, ignore_index, temperature, grad_logits, 0, true);
  return grad_logits;
}

void token_logps_backward_inplace_cuda(const at::Tensor& grad_logps, const at::Tensor& logits,
                                       const at::Tensor& labels, const at::Tensor& lse, int64_t ignore_index,
                                       double temperature, int64_t label_offset, int64_t vocab) {
  detail::check_token_logps_inputs(logits, labels, temperature);
  detail::check_token_logps_backward_inputs(grad_logps, logits, labels, lse);
  detail::check_token_logps_inplace_inputs(logits, label_offset, vocab);
  const c10::cuda::CUDAGuard guard(logits.device());
  const bool whole_vocabulary = label_offset == 0 && (vocab < 0 || vocab == logits.size(1));
  run_backward(grad_logps, logits, labels, lse, ignore_index, temperature, logits, label_offset, whole_vocabulary);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CUDA, m) {
  m.impl("token_logps", &token_logps_cuda);
  m.impl("_token_logps_backward", &token_logps_backward_cuda);
  m.impl("_token_logps_backward_inplace", &token_logps_backward_inplace_cuda);
}

}  // namespace prefopt::ops
