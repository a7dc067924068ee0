// CUDA kernel of pairwise_margin_reduce: one warp per anchor (four anchors per 128-thread block), the lanes
// striding over the other items of the list with the pair math of common/pairwise_margin_reduce.h and merging
// their partial PairAnchorStates by shuffles with the state's own merge; the backward does the same for each
// item's gradient. [B, K] inputs are converted once to the accumulation dtype; memory O(B K), no [B, K, K].
// Device guard, current stream, launch check.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common/pairwise_margin_reduce.h"
#include "../pairwise_margin_reduce.h"
#include "reduce.cuh"

namespace prefopt::ops {
namespace {

namespace kc = kernels::cuda;
using kernels::PairAnchorState;
using kernels::PairwiseParams;

constexpr int kWarpsPerBlock = 4;
constexpr int kThreads = 32 * kWarpsPerBlock;

struct AnchorMerge {
  int32_t reduce;
  template <typename S>
  __device__ void operator()(S& a, const S& b) const {
    a.merge(reduce, b);
  }
};

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

template <typename acc_t>
__global__ void __launch_bounds__(kThreads) pairwise_forward_kernel(PairwiseParams<acc_t> p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (idx >= p.lists * p.items) return;  // the whole warp shares idx
  const int64_t base = (idx / p.items) * p.items;
  const int64_t i = idx - base;
  auto state = PairAnchorState<acc_t>::empty(p.reduce);
  if (kernels::pair_anchor_valid(p, base, i)) {
    const acc_t s_i = p.scores[base + i];
    for (int64_t j = lane; j < p.items; j += 32) {
      state.add(p.fn, p.reduce, kernels::pair_weight(p, base, i, j), s_i - p.scores[base + j]);
    }
  }
  state = kc::warp_merge(state, AnchorMerge{p.reduce});
  if (lane == 0) {
    p.per_anchor[idx] = state.result(p.reduce);
    p.weight_sum[idx] = state.weight_sum;
  }
}

template <typename acc_t>
__global__ void __launch_bounds__(kThreads) pairwise_backward_kernel(PairwiseParams<acc_t> p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (idx >= p.lists * p.items) return;
  const int64_t base = (idx / p.items) * p.items;
  const int64_t k = idx - base;
  SumState<acc_t> s{acc_t(0)};
  for (int64_t j = lane; j < p.items; j += 32) s.value += kernels::pairwise_grad_item(p, base, k, j);
  s = kc::warp_merge(s, SumMerge{});
  if (lane == 0) p.grad_scores[idx] = s.value;
}

unsigned blocks_for(int64_t anchors) {
  const int64_t blocks = (anchors + kWarpsPerBlock - 1) / kWarpsPerBlock;
  TORCH_CHECK(blocks <= int64_t{2147483647}, "pairwise_margin_reduce: too many anchors (", anchors, ") for one launch");
  return static_cast<unsigned>(blocks);
}

std::tuple<at::Tensor, at::Tensor> pairwise_margin_reduce_cuda(
    const at::Tensor& scores, const std::optional<at::Tensor>& labels, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& gain, const std::optional<at::Tensor>& discount,
    const std::optional<at::Tensor>& positions, c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
    double label_margin, int64_t max_distance) {
  detail::check_pairwise_inputs(scores, labels, mask, gain, discount, positions, fn, reduce, pairs, label_margin,
                                max_distance);
  const c10::cuda::CUDAGuard guard(scores.device());
  const auto config = detail::parse_pairwise_options(fn, reduce, pairs);
  const auto acc = at::toOpMathType(scores.scalar_type());
  at::Tensor per_anchor = at::empty(scores.sizes(), scores.options().dtype(acc));
  at::Tensor weight_sum = at::empty(scores.sizes(), scores.options().dtype(acc));
  if (scores.numel() == 0) return {per_anchor, weight_sum};
  const detail::PairwiseItems t = detail::pairwise_items(scores, labels, mask, gain, discount, positions, acc);
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(acc, "pairwise_margin_reduce_cuda", [&] {
    auto p = detail::make_pairwise_params<scalar_t>(t, config, label_margin, max_distance);
    p.per_anchor = per_anchor.mutable_data_ptr<scalar_t>();
    p.weight_sum = weight_sum.mutable_data_ptr<scalar_t>();
    pairwise_forward_kernel<scalar_t><<<blocks_for(scores.numel()), kThreads, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {per_anchor, weight_sum};
}

at::Tensor pairwise_margin_reduce_backward_cuda(
    const at::Tensor& grad_per_anchor, const at::Tensor& scores, const at::Tensor& per_anchor_in,
    const std::optional<at::Tensor>& labels, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& gain, const std::optional<at::Tensor>& discount,
    const std::optional<at::Tensor>& positions, c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
    double label_margin, int64_t max_distance) {
  detail::check_pairwise_inputs(scores, labels, mask, gain, discount, positions, fn, reduce, pairs, label_margin,
                                max_distance);
  detail::check_pairwise_backward_shapes(grad_per_anchor, per_anchor_in, scores);
  const c10::cuda::CUDAGuard guard(scores.device());
  const auto config = detail::parse_pairwise_options(fn, reduce, pairs);
  const auto acc = at::toOpMathType(scores.scalar_type());
  at::Tensor grad = at::empty(scores.sizes(), scores.options().dtype(acc));
  if (scores.numel() == 0) return grad.to(scores.scalar_type());
  const detail::PairwiseItems t = detail::pairwise_items(scores, labels, mask, gain, discount, positions, acc);
  const at::Tensor g = grad_per_anchor.to(acc).contiguous();
  const at::Tensor per_anchor = per_anchor_in.to(acc).contiguous();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(acc, "pairwise_margin_reduce_backward_cuda", [&] {
    auto p = detail::make_pairwise_params<scalar_t>(t, config, label_margin, max_distance);
    p.grad_per_anchor = g.const_data_ptr<scalar_t>();
    p.per_anchor = const_cast<scalar_t*>(per_anchor.const_data_ptr<scalar_t>());  // read only in the backward
    p.grad_scores = grad.mutable_data_ptr<scalar_t>();
    pairwise_backward_kernel<scalar_t><<<blocks_for(scores.numel()), kThreads, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad.to(scores.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CUDA, m) {
  m.impl("pairwise_margin_reduce", &pairwise_margin_reduce_cuda);
  m.impl("_pairwise_margin_reduce_backward", &pairwise_margin_reduce_backward_cuda);
}

}  // namespace prefopt::ops
