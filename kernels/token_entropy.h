// The token_entropy operator's C++ entry point. Internal: users reach it through prefopt/scoring.h or
// torch.ops.prefopt.token_entropy.
#pragma once

#include <optional>

#include <ATen/core/Tensor.h>

namespace prefopt::ops {

// logits [N, V] (fp32/bf16/fp16/fp64), labels [N] int64 or none (rows whose label is ignore_index give 0
// and are not read). Returns the entropy of softmax(logits / T) per row [N] in the accumulation dtype.
// A metric: never differentiable.
at::Tensor token_entropy(const at::Tensor& logits, const std::optional<at::Tensor>& labels, int64_t ignore_index,
                         double temperature);

namespace detail {
void check_token_entropy_inputs(const at::Tensor& logits, const std::optional<at::Tensor>& labels, double temperature);
}  // namespace detail
}  // namespace prefopt::ops
