// Per-token and per-sequence log-probs of labels, on top of the token_logps operator. The masked sum runs
// over [B, T] log-probs; the [B, T, V] logits are only ever read by the kernel, in their own dtype.
#include "prefopt/scoring.h"

#include <ATen/ATen.h>

#include "../kernels/token_logps.h"

namespace prefopt {

torch::Tensor token_logps(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index,
                          double temperature) {
  return std::get<0>(ops::token_logps(logits, labels, ignore_index, temperature));
}

SequenceLogps sequence_logps(const torch::Tensor& logits, const torch::Tensor& labels,
                             const SequenceLogpsOptions& options) {
  TORCH_CHECK(logits.dim() == 3, "logits must have shape [B, T, V], got ", logits.sizes());
  TORCH_CHECK(labels.dim() == 2 && labels.size(0) == logits.size(0) && labels.size(1) == logits.size(1),
              "labels must have shape [B, T] matching logits [", logits.size(0), ", ", logits.size(1), ", ",
              logits.size(2), "], got ", labels.sizes());
  const int64_t batch = logits.size(0);
  const int64_t steps = logits.size(1);
  const at::Tensor flat_logits = logits.reshape({batch * steps, logits.size(2)});
  const at::Tensor flat_labels = labels.reshape({batch * steps});
  const at::Tensor per_token =
      token_logps(flat_logits, flat_labels, options.ignore_index(), options.temperature()).view({batch, steps});
  // Ignored positions are already exact zeros, so a plain sum is the masked sum.
  at::Tensor logps = per_token.sum(1);
  if (options.average()) {
    const at::Tensor counts = labels.ne(options.ignore_index()).sum(1).clamp_min(1).to(logps.scalar_type());
    logps = logps / counts;
  }
  return {logps, per_token};
}

}  // namespace prefopt
