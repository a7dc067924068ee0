// Batch reductions of per-example losses (kMean, kSum, kNone), as LibTorch's losses apply them.
#include "reduction.h"

#include <ATen/ATen.h>

namespace prefopt::detail {

at::Tensor reduce(const at::Tensor& losses, const Reduction& reduction) {
  if (std::holds_alternative<torch::enumtype::kMean>(reduction)) return losses.mean();
  if (std::holds_alternative<torch::enumtype::kSum>(reduction)) return losses.sum();
  return losses;
}

}  // namespace prefopt::detail
