// CUDA kernel of wpo_token_stats: one block per row (a warp for vocabularies up to 1024), each thread folding
// its 16-byte-vector slice of the row into a WpoRowState (common/wpo_token_stats.h: one exp per entry feeds
// LSE(z) and LSE(2z)), merged across the block with the state's own merge. The row is read once. Labels
// outside [0, V) that are not ignore_index trip a device-side assert. Device guard, current stream, launch check.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/macros/Macros.h>
#include <torch/library.h>

#include "../common/token_logps.h"
#include "../common/wpo_token_stats.h"
#include "../token_logps.h"
#include "../wpo_token_stats.h"
#include "reduce.cuh"
#include "row_io.cuh"

namespace prefopt::ops {
namespace {

namespace kc = kernels::cuda;
using kernels::WpoRowState;

struct WpoMerge {
  template <typename S>
  __device__ void operator()(S& a, const S& b) const {
    a.merge(b);
  }
};

template <int kThreads, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) wpo_token_stats_kernel(kernels::WpoTokenStatsParams<scalar_t, acc_t> p) {
  const int64_t r = blockIdx.x;
  const int64_t label = p.labels[r * p.labels_stride];
  if (label == p.ignore_index) {
    if (threadIdx.x == 0) {
      p.log_weight[r] = acc_t(0);
      p.logps[r] = acc_t(0);
      p.lse[r] = acc_t(0);
      p.lse2[r] = acc_t(0);
    }
    return;
  }
  CUDA_KERNEL_ASSERT(kernels::label_in_range(label, p.vocab) && "wpo_token_stats: label out of range");
  const scalar_t* row = p.logits + r * p.logits_row_stride;
  auto state = WpoRowState<acc_t>::empty();
  kc::for_each_element<kThreads>(row, p.vocab, [&](int64_t, scalar_t x) {
    state.add(static_cast<acc_t>(x) * p.inv_temperature);
  });
  state = kc::block_merge<kThreads>(state, WpoRowState<acc_t>::empty(), WpoMerge{});
  if (threadIdx.x == 0) {
    const acc_t z_label = static_cast<acc_t>(row[label]) * p.inv_temperature;
    const acc_t lse = state.lse();
    p.lse[r] = lse;
    p.lse2[r] = state.lse2();
    p.logps[r] = z_label - lse;
    p.log_weight[r] = state.log_weight(z_label);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wpo_token_stats_cuda(const at::Tensor& logits_in,
                                                                                const at::Tensor& labels,
                                                                                int64_t ignore_index,
                                                                                double temperature) {
  detail::check_wpo_token_stats_inputs(logits_in, labels, temperature);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  const auto options = logits.options().dtype(at::toOpMathType(logits.scalar_type()));
  const int64_t n = logits.size(0);
  at::Tensor log_weight = at::empty({n}, options), logps = at::empty({n}, options);
  at::Tensor lse = at::empty({n}, options), lse2 = at::empty({n}, options);
  if (n == 0) return {log_weight, logps, lse, lse2};
  TORCH_CHECK(n <= int64_t{2147483647}, "logits has ", n, " rows; the CUDA kernel supports at most 2^31 - 1");
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "wpo_token_stats_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = detail::make_wpo_token_stats_params<scalar_t, acc_t>(logits, labels, ignore_index, temperature, log_weight,
                                                                 logps, lse, lse2);
    if (p.vocab <= kc::kWarpRowMaxVocab) {
      wpo_token_stats_kernel<32, scalar_t, acc_t><<<static_cast<unsigned>(n), 32, 0, stream>>>(p);
    } else {
      wpo_token_stats_kernel<256, scalar_t, acc_t><<<static_cast<unsigned>(n), 256, 0, stream>>>(p);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {log_weight, logps, lse, lse2};
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CUDA, m) { m.impl("wpo_token_stats", &wpo_token_stats_cuda); }

}  // namespace prefopt::ops
