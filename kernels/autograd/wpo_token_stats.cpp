// Autograd registration of wpo_token_stats: WPO's weights are detached by definition (LOSSES.md section 1),
// so the op runs below autograd and none of its outputs requires grad.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../wpo_token_stats.h"

namespace prefopt::ops {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wpo_token_stats_autograd(const at::Tensor& logits,
                                                                                    const at::Tensor& labels,
                                                                                    int64_t ignore_index,
                                                                                    double temperature) {
  at::AutoDispatchBelowADInplaceOrView guard;
  return wpo_token_stats(logits, labels, ignore_index, temperature);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Autograd, m) { m.impl("wpo_token_stats", &wpo_token_stats_autograd); }

}  // namespace prefopt::ops
