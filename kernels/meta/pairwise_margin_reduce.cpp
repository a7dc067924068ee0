// Meta (shape-only) kernels of pairwise_margin_reduce and its backward: the same checks, no data.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../pairwise_margin_reduce.h"

namespace prefopt::ops {
namespace {

std::tuple<at::Tensor, at::Tensor> pairwise_margin_reduce_meta(
    const at::Tensor& scores, const std::optional<at::Tensor>& labels, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& gain, const std::optional<at::Tensor>& discount,
    const std::optional<at::Tensor>& positions, c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
    double label_margin, int64_t max_distance) {
  detail::check_pairwise_inputs(scores, labels, mask, gain, discount, positions, fn, reduce, pairs, label_margin,
                                max_distance);
  const auto options = scores.options().dtype(at::toOpMathType(scores.scalar_type()));
  return {at::empty(scores.sizes(), options), at::empty(scores.sizes(), options)};
}

at::Tensor pairwise_margin_reduce_backward_meta(
    const at::Tensor& grad_per_anchor, const at::Tensor& scores, const at::Tensor& per_anchor,
    const std::optional<at::Tensor>& labels, const std::optional<at::Tensor>& mask,
    const std::optional<at::Tensor>& gain, const std::optional<at::Tensor>& discount,
    const std::optional<at::Tensor>& positions, c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
    double label_margin, int64_t max_distance) {
  detail::check_pairwise_inputs(scores, labels, mask, gain, discount, positions, fn, reduce, pairs, label_margin,
                                max_distance);
  return at::empty(scores.sizes(), scores.options());
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Meta, m) {
  m.impl("pairwise_margin_reduce", &pairwise_margin_reduce_meta);
  m.impl("_pairwise_margin_reduce_backward", &pairwise_margin_reduce_backward_meta);
}

}  // namespace prefopt::ops
