// CPU kernel of pairwise_margin_reduce: at::parallel_for over the B*K anchors, each reducing over the other
// K items of its list with the pair math of common/pairwise_margin_reduce.h (one loop over j for the value,
// one for the gradient). Inputs are [B, K] and small: they are converted once to the accumulation dtype.
// Memory O(B K); no [B, K, K] tensor exists.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../common/pairwise_margin_reduce.h"
#include "../pairwise_margin_reduce.h"

namespace prefopt::ops {
namespace {

using kernels::PairAnchorState;
using kernels::PairwiseParams;

int64_t grain(int64_t items) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(items, 1)); }

std::tuple<at::Tensor, at::Tensor> pairwise_margin_reduce_cpu(
    const at::Tensor& scores, const std::optional<at::Tensor>& labels, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& gain, const std::optional<at::Tensor>& discount,
    const std::optional<at::Tensor>& positions, c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
    double label_margin, int64_t max_distance) {
  detail::check_pairwise_inputs(scores, labels, mask, gain, discount, positions, fn, reduce, pairs, label_margin,
                                max_distance);
  const auto config = detail::parse_pairwise_options(fn, reduce, pairs);
  const auto acc = at::toOpMathType(scores.scalar_type());
  at::Tensor per_anchor = at::empty(scores.sizes(), scores.options().dtype(acc));
  at::Tensor weight_sum = at::empty(scores.sizes(), scores.options().dtype(acc));
  if (scores.numel() == 0) return {per_anchor, weight_sum};
  const detail::PairwiseItems t = detail::pairwise_items(scores, labels, mask, gain, discount, positions, acc);
  AT_DISPATCH_FLOATING_TYPES(acc, "pairwise_margin_reduce_cpu", [&] {
    using acc_t = scalar_t;
    auto p = detail::make_pairwise_params<acc_t>(t, config, label_margin, max_distance);
    p.per_anchor = per_anchor.mutable_data_ptr<acc_t>();
    p.weight_sum = weight_sum.mutable_data_ptr<acc_t>();
    at::parallel_for(0, p.lists * p.items, grain(p.items), [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t base = (idx / p.items) * p.items;
        const int64_t i = idx - base;
        auto state = PairAnchorState<acc_t>::empty(p.reduce);
        if (kernels::pair_anchor_valid(p, base, i)) {
          const acc_t s_i = p.scores[base + i];
          for (int64_t j = 0; j < p.items; ++j) {
            state.add(p.fn, p.reduce, kernels::pair_weight(p, base, i, j), s_i - p.scores[base + j]);
          }
        }
        p.per_anchor[idx] = state.result(p.reduce);
        p.weight_sum[idx] = state.weight_sum;
      }
    });
  });
  return {per_anchor, weight_sum};
}

at::Tensor pairwise_margin_reduce_backward_cpu(
    const at::Tensor& grad_per_anchor, const at::Tensor& scores, const at::Tensor& per_anchor_in,
    const std::optional<at::Tensor>& labels, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& gain, const std::optional<at::Tensor>& discount,
    const std::optional<at::Tensor>& positions, c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
    double label_margin, int64_t max_distance) {
  detail::check_pairwise_inputs(scores, labels, mask, gain, discount, positions, fn, reduce, pairs, label_margin,
                                max_distance);
  detail::check_pairwise_backward_shapes(grad_per_anchor, per_anchor_in, scores);
  const auto config = detail::parse_pairwise_options(fn, reduce, pairs);
  const auto acc = at::toOpMathType(scores.scalar_type());
  at::Tensor grad = at::empty(scores.sizes(), scores.options().dtype(acc));
  if (scores.numel() == 0) return grad.to(scores.scalar_type());
  const detail::PairwiseItems t = detail::pairwise_items(scores, labels, mask, gain, discount, positions, acc);
  const at::Tensor g = grad_per_anchor.to(acc).contiguous();
  const at::Tensor per_anchor = per_anchor_in.to(acc).contiguous();
  AT_DISPATCH_FLOATING_TYPES(acc, "pairwise_margin_reduce_backward_cpu", [&] {
    using acc_t = scalar_t;
    auto p = detail::make_pairwise_params<acc_t>(t, config, label_margin, max_distance);
    p.grad_per_anchor = g.const_data_ptr<acc_t>();
    p.per_anchor = const_cast<acc_t*>(per_anchor.const_data_ptr<acc_t>());  // read only in the backward
    p.grad_scores = grad.mutable_data_ptr<acc_t>();
    at::parallel_for(0, p.lists * p.items, grain(p.items), [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t base = (idx / p.items) * p.items;
        const int64_t k = idx - base;
        acc_t out = acc_t(0);
        for (int64_t j = 0; j < p.items; ++j) out += kernels::pairwise_grad_item(p, base, k, j);
        p.grad_scores[idx] = out;
      }
    });
  });
  return grad.to(scores.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CPU, m) {
  m.impl("pairwise_margin_reduce", &pairwise_margin_reduce_cpu);
  m.impl("_pairwise_margin_reduce_backward", &pairwise_margin_reduce_backward_cpu);
}

}  // namespace prefopt::ops
