// The wpo_token_stats operator's C++ entry point. Internal: users reach it through prefopt/scoring.h
// (wpo_log_weights, wpo_sequence_log_weights) or torch.ops.prefopt.wpo_token_stats.
#pragma once

#include <tuple>

#include <ATen/core/Tensor.h>

#include "common/wpo_token_stats.h"

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

// The kernel parameters, shared by the CPU and CUDA kernels: logits [N, V] with a contiguous vocabulary, the four
// outputs allocated by the caller in acc_t.
template <typename scalar_t, typename acc_t>
kernels::WpoTokenStatsParams<scalar_t, acc_t> make_wpo_token_stats_params(
    const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index, double temperature,
    at::Tensor& log_weight, at::Tensor& logps, at::Tensor& lse, at::Tensor& lse2) {
  kernels::WpoTokenStatsParams<scalar_t, acc_t> p{};
  p.logits = logits.const_data_ptr<scalar_t>();
  p.labels = labels.const_data_ptr<int64_t>();
  p.rows = logits.size(0);
  p.vocab = logits.size(1);
  p.logits_row_stride = logits.stride(0);
  p.labels_stride = labels.stride(0);
  p.ignore_index = ignore_index;
  p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
  p.log_weight = log_weight.mutable_data_ptr<acc_t>();
  p.logps = logps.mutable_data_ptr<acc_t>();
  p.lse = lse.mutable_data_ptr<acc_t>();
  p.lse2 = lse2.mutable_data_ptr<acc_t>();
  return p;
}
}  // namespace detail
}  // namespace prefopt::ops
