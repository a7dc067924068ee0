// Meta (shape-only) kernels of token_logps and its backwards, so torch.compile and opcheck can trace the op
// without data. They run the same input checks as the device kernels and allocate nothing real.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../token_logps.h"

namespace prefopt::ops {
namespace {

std::tuple<at::Tensor, at::Tensor> token_logps_meta(const at::Tensor& logits, const at::Tensor& labels,
                                                    int64_t /*ignore_index*/, double temperature,
                                                    bool /*inplace_backward*/) {
  detail::check_token_logps_inputs(logits, labels, temperature);
  const auto options = logits.options().dtype(at::toOpMathType(logits.scalar_type()));
  return {at::empty({logits.size(0)}, options), at::empty({logits.size(0)}, options)};
}

at::Tensor token_logps_backward_meta(const at::Tensor& grad_logps, const at::Tensor& logits,
                                     const at::Tensor& labels, const at::Tensor& lse, int64_t /*ignore_index*/,
                                     double temperature) {
  detail::check_token_logps_inputs(logits, labels, temperature);
  detail::check_token_logps_backward_inputs(grad_logps, logits, labels, lse);
  return at::empty(logits.sizes(), logits.options().memory_format(at::MemoryFormat::Contiguous));
}

void token_logps_backward_inplace_meta(const at::Tensor& grad_logps, const at::Tensor& logits,
                                       const at::Tensor& labels, const at::Tensor& lse, int64_t /*ignore_index*/,
                                       double temperature, int64_t label_offset, int64_t vocab) {
  detail::check_token_logps_inputs(logits, labels, temperature);
  detail::check_token_logps_backward_inputs(grad_logps, logits, labels, lse);
  detail::check_token_logps_inplace_inputs(logits, label_offset, vocab);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Meta, m) {
  m.impl("token_logps", &token_logps_meta);
  m.impl("_token_logps_backward", &token_logps_backward_meta);
  m.impl("_token_logps_backward_inplace", &token_logps_backward_inplace_meta);
}

}  // namespace prefopt::ops
