// Autograd registration of token_entropy: the entropy is a metric, so the op runs below autograd and its output
// never requires grad (rather than failing at backward time with "no autograd kernel").
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../token_entropy.h"

namespace prefopt::ops {
namespace {

at::Tensor token_entropy_autograd(const at::Tensor& logits, const std::optional<at::Tensor>& labels,
                                  int64_t ignore_index, double temperature) {
  at::AutoDispatchBelowADInplaceOrView guard;
  return token_entropy(logits, labels, ignore_index, temperature);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, Autograd, m) { m.impl("token_entropy", &token_entropy_autograd); }

}  // namespace prefopt::ops
