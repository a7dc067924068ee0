// CUDA kernel of token_kl: one block per row (a warp for vocabularies up to 1024), each thread folding its
// 16-byte-vector slice of the policy and reference rows into a KlRowState (common/token_kl.h), merged across
// the block with the state's own merge. Both rows are read once; no probability row exists. The backward reads
// both rows once more and writes g/T (p_pol - p_ref) from the two saved LSEs. Device guard, current stream,
// launch check.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common/token_kl.h"
#include "../token_kl.h"
#include "../token_logps.h"
#include "reduce.cuh"
#include "row_io.cuh"

namespace prefopt::ops {
namespace {

namespace kc = kernels::cuda;
using kernels::KlRowState;

struct KlMerge {
  template <typename S>
  __device__ void operator()(S& a, const S& b) const {
    a.merge(b);
  }
};

template <int kThreads, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) token_kl_forward_kernel(kernels::TokenKlParams<scalar_t, acc_t> p) {
  const int64_t r = blockIdx.x;
  if (kernels::row_ignored(p.labels, p.labels_stride, r, p.ignore_index)) {
    if (threadIdx.x == 0) {
      p.kl[r] = acc_t(0);
      p.policy_lse[r] = acc_t(0);
      p.ref_lse[r] = acc_t(0);
    }
    return;
  }
  auto state = KlRowState<acc_t>::empty();
  kc::for_each_element2<kThreads>(p.policy + r * p.policy_row_stride, p.ref + r * p.ref_row_stride, p.vocab,
                                  [&](int64_t, scalar_t xp, scalar_t xr) {
                                    state.add(static_cast<acc_t>(xr) * p.inv_temperature,
                                              static_cast<acc_t>(xp) * p.inv_temperature);
                                  });
  state = kc::block_merge<kThreads>(state, KlRowState<acc_t>::empty(), KlMerge{});
  if (threadIdx.x == 0) {
    p.kl[r] = state.kl();
    p.policy_lse[r] = state.policy_lse();
    p.ref_lse[r] = state.ref_lse();
  }
}

template <int kThreads, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    token_kl_backward_kernel(kernels::TokenKlBackwardParams<scalar_t, acc_t> p) {
  const int64_t r = blockIdx.x;
  scalar_t* out = p.grad_policy + r * p.grad_stride;
  const acc_t g = p.grad_kl[r];
  if (kernels::row_ignored(p.labels, p.labels_stride, r, p.ignore_index) || g == acc_t(0)) {
    for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) out[j] = scalar_t(0);
    return;
  }
  const acc_t lp = p.policy_lse[r], lr = p.ref_lse[r], gt = g * p.inv_temperature;
  kc::transform_row2<kThreads>(p.policy + r * p.policy_row_stride, p.ref + r * p.ref_row_stride, out, p.vocab,
                               [&](int64_t, scalar_t xp, scalar_t xr) {
                                 return kernels::token_kl_grad(static_cast<acc_t>(xp), static_cast<acc_t>(xr), lp, lr,
                                                               gt, p.inv_temperature);
                               });
}

template <typename Launch>
void launch_by_vocab(int64_t vocab, Launch&& launch) {
  if (vocab <= kc::kWarpRowMaxVocab) {
    launch(std::integral_constant<int, 32>{});
  } else {
    launch(std::integral_constant<int, 256>{});
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> token_kl_cuda(const at::Tensor& policy_in, const at::Tensor& ref_in,
                                                             const std::optional<at::Tensor>& labels,
                                                             int64_t ignore_index, double temperature) {
  detail::check_token_kl_inputs(policy_in, ref_in, labels, temperature);
  const c10::cuda::CUDAGuard guard(policy_in.device());
  const at::Tensor policy = detail::vocab_contiguous(policy_in);
  const at::Tensor ref = detail::vocab_contiguous(ref_in);
  const auto options = policy.options().dtype(at::toOpMathType(policy.scalar_type()));
  const int64_t n = policy.size(0);
  at::Tensor kl = at::empty({n}, options), policy_lse = at::empty({n}, options), ref_lse = at::empty({n}, options);
  if (n == 0) return {kl, policy_lse, ref_lse};
  TORCH_CHECK(n <= int64_t{2147483647}, "policy_logits has ", n, " rows; the CUDA kernel supports at most 2^31 - 1");
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, policy.scalar_type(), "token_kl_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = detail::make_token_kl_params<scalar_t, acc_t>(policy, ref, labels, ignore_index, temperature, kl,
                                                            policy_lse, ref_lse);
    launch_by_vocab(p.vocab, [&](auto threads) {
      constexpr int kThreads = decltype(threads)::value;
      token_kl_forward_kernel<kThreads, scalar_t, acc_t><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(p);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {kl, policy_lse, ref_lse};
}

at::Tensor token_kl_backward_cuda(const at::Tensor& grad_kl_in, const at::Tensor& policy_in, const at::Tensor& ref_in,
                                  const std::optional<at::Tensor>& labels, const at::Tensor& policy_lse_in,
                                  const at::Tensor& ref_lse_in, int64_t ignore_index, double temperature) {
  detail::check_token_kl_inputs(policy_in, ref_in, labels, temperature);
  detail::check_token_kl_backward_inputs(grad_kl_in, policy_in, policy_lse_in, ref_lse_in);
  const c10::cuda::CUDAGuard guard(policy_in.device());
  const at::Tensor policy = detail::vocab_contiguous(policy_in);
  const at::Tensor ref = detail::vocab_contiguous(ref_in);
  at::Tensor grad = at::empty(policy.sizes(), policy.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t n = policy.size(0);
  if (n == 0) return grad;
  TORCH_CHECK(n <= int64_t{2147483647}, "policy_logits has ", n, " rows; the CUDA kernel supports at most 2^31 - 1");
  const auto acc_dtype = at::toOpMathType(policy.scalar_type());
  const at::Tensor grad_kl = grad_kl_in.to(acc_dtype).contiguous();
  const at::Tensor policy_lse = policy_lse_in.contiguous(), ref_lse = ref_lse_in.contiguous();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, policy.scalar_type(), "token_kl_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = detail::make_token_kl_backward_params<scalar_t, acc_t>(policy, ref, labels, grad_kl, policy_lse, ref_lse,
                                                                     grad, ignore_index, temperature);
    launch_by_vocab(p.vocab, [&](auto threads) {
      constexpr int kThreads = decltype(threads)::value;
      token_kl_backward_kernel<kThreads, scalar_t, acc_t><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(p);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CUDA, m) {
  m.impl("token_kl", &token_kl_cuda);
  m.impl("_token_kl_backward", &token_kl_backward_cuda);
}

}  // namespace prefopt::ops
