// The wpo_token_stats operator's C++ entry point. Internal: users reach it through prefopt/scoring.h
// (wpo_log_weights, wpo_sequence_log_weights) or torch.ops.prefopt.wpo_token_stats.
#pragma once

#include <tuple>

#include <ATen/core/Tensor.h>

namespace prefopt::ops {

// logits [N, V] (fp32/bf16/fp16/fp64), labels [N] int64 (each in [0, V) or ignore_index). From one read of each
// row: (log_weight, logps, lse, lse2), each [N] in the accumulation dtype and 0 where ignored, with
// lse = LSE(z), lse2 = LSE(2z), logps = z_label - lse and WPO's log_weight = logps - (lse2 - 2 lse),
// z = logits / T. Never differentiable (WPO's weights are detached by definition).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wpo_token_stats(const at::Tensor& logits,
                                                                           const at::Tensor& labels,
                                                                           int64_t ignore_index, double temperature);

namespace detail {
void check_wpo_token_stats_inputs(const at::Tensor& logits, const at::Tensor& labels, double temperature);
}  // namespace detail
}  // namespace prefopt::ops
