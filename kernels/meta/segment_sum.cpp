// Meta (shape-only) kernel of segment_sum: the same shape and dtype checks, no data (offsets are not read).
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../segment_sum.h"

namespace prefopt::ops {
namespace {

at::Tensor segment_sum_meta(const at::Tensor& values, const at::Tensor& cu_seqlens) {
  detail::check_segment_sum_inputs(values, cu_seqlens);
  return at::empty({cu_seqlens.size(0) - 1}, values.options().dtype(at::toOpMathType(values.scalar_type())));
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Meta, m) { m.impl("segment_sum", &segment_sum_meta); }

}  // namespace prefopt::ops
