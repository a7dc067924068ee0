// CUDA kernel of token_entropy: one block per row (a warp for vocabularies up to 1024), each thread folding its
// 16-byte-vector slice of the row into an EntropyRowState (common/token_entropy.h), merged across the block
// with the state's own merge. The row is read once; no probability row exists. Device guard, current stream,
// launch check.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common/token_entropy.h"
#include "../common/token_kl.h"
#include "../token_entropy.h"
#include "../token_logps.h"
#include "reduce.cuh"
#include "row_io.cuh"

namespace prefopt::ops {
namespace {

namespace kc = kernels::cuda;
using kernels::EntropyRowState;

struct EntropyMerge {
  template <typename S>
  __device__ void operator()(S& a, const S& b) const {
    a.merge(b);
  }
};

template <int kThreads, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) token_entropy_kernel(kernels::TokenEntropyParams<scalar_t, acc_t> p) {
  const int64_t r = blockIdx.x;
  if (kernels::row_ignored(p.labels, p.labels_stride, r, p.ignore_index)) {
    if (threadIdx.x == 0) p.entropy[r] = acc_t(0);
    return;
  }
  auto state = EntropyRowState<acc_t>::empty();
  kc::for_each_element<kThreads>(p.logits + r * p.logits_row_stride, p.vocab, [&](int64_t, scalar_t x) {
    state.add(static_cast<acc_t>(x) * p.inv_temperature);
  });
  state = kc::block_merge<kThreads>(state, EntropyRowState<acc_t>::empty(), EntropyMerge{});
  if (threadIdx.x == 0) p.entropy[r] = state.entropy();
}

at::Tensor token_entropy_cuda(const at::Tensor& logits_in, const std::optional<at::Tensor>& labels,
                              int64_t ignore_index, double temperature) {
  detail::check_token_entropy_inputs(logits_in, labels, temperature);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  at::Tensor entropy = at::empty({logits.size(0)}, logits.options().dtype(at::toOpMathType(logits.scalar_type())));
  const int64_t n = logits.size(0);
  if (n == 0) return entropy;
  TORCH_CHECK(n <= int64_t{2147483647}, "logits has ", n, " rows; the CUDA kernel supports at most 2^31 - 1");
  const bool has_labels = labels.has_value() && labels->defined();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_entropy_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    kernels::TokenEntropyParams<scalar_t, acc_t> p{};
    p.logits = logits.const_data_ptr<scalar_t>();
    p.labels = has_labels ? labels->const_data_ptr<int64_t>() : nullptr;
    p.rows = n;
    p.vocab = logits.size(1);
    p.logits_row_stride = logits.stride(0);
    p.labels_stride = has_labels ? labels->stride(0) : 0;
    p.ignore_index = ignore_index;
    p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
    p.entropy = entropy.mutable_data_ptr<acc_t>();
    if (p.vocab <= kc::kWarpRowMaxVocab) {
      token_entropy_kernel<32, scalar_t, acc_t><<<static_cast<unsigned>(n), 32, 0, stream>>>(p);
    } else {
      token_entropy_kernel<256, scalar_t, acc_t><<<static_cast<unsigned>(n), 256, 0, stream>>>(p);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return entropy;
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CUDA, m) { m.impl("token_entropy", &token_entropy_cuda); }

}  // namespace prefopt::ops
