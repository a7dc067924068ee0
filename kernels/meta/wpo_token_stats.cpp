// Meta (shape-only) kernel of wpo_token_stats: the same checks as the device kernels, no data.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../wpo_token_stats.h"

namespace prefopt::ops {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wpo_token_stats_meta(const at::Tensor& logits,
                                                                                const at::Tensor& labels,
                                                                                int64_t /*ignore_index*/,
                                                                                double temperature) {
  detail::check_wpo_token_stats_inputs(logits, labels, temperature);
  const auto options = logits.options().dtype(at::toOpMathType(logits.scalar_type()));
  const int64_t n = logits.size(0);
  return {at::empty({n}, options), at::empty({n}, options), at::empty({n}, options), at::empty({n}, options)};
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Meta, m) { m.impl("wpo_token_stats", &wpo_token_stats_meta); }

}  // namespace prefopt::ops
