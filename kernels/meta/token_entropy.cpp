// Meta (shape-only) kernel of token_entropy: the same checks as the device kernels, no data.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../token_entropy.h"

namespace prefopt::ops {
namespace {

at::Tensor token_entropy_meta(const at::Tensor& logits, const std::optional<at::Tensor>& labels,
                              int64_t /*ignore_index*/, double temperature) {
  detail::check_token_entropy_inputs(logits, labels, temperature);
  return at::empty({logits.size(0)}, logits.options().dtype(at::toOpMathType(logits.scalar_type())));
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Meta, m) { m.impl("token_entropy", &token_entropy_meta); }

}  // namespace prefopt::ops
