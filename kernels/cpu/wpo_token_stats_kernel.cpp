// CPU kernel of wpo_token_stats: checks, a params struct, and a call into the vectorised row loop of
// wpo_token_stats_rows.h. Each row is read once in its own dtype; LSE(z) and LSE(2z) share one exp per entry.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/wpo_token_stats.h"
#include "../token_logps.h"
#include "../wpo_token_stats.h"
#include "vec_rows.h"

namespace prefopt::ops {
namespace {

template <typename scalar_t, typename acc_t>
void stats_rows(const kernels::WpoTokenStatsParams<scalar_t, acc_t>& p) {
  PREFOPT_CPU_ROWS(wpo_token_stats_forward, p);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wpo_token_stats_cpu(const at::Tensor& logits_in,
                                                                               const at::Tensor& labels,
                                                                               int64_t ignore_index,
                                                                               double temperature) {
  detail::check_wpo_token_stats_inputs(logits_in, labels, temperature);
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  const auto options = logits.options().dtype(at::toOpMathType(logits.scalar_type()));
  const int64_t n = logits.size(0);
  at::Tensor log_weight = at::empty({n}, options), logps = at::empty({n}, options);
  at::Tensor lse = at::empty({n}, options), lse2 = at::empty({n}, options);
  if (n == 0) return {log_weight, logps, lse, lse2};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "wpo_token_stats_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    kernels::WpoTokenStatsParams<scalar_t, acc_t> p{};
    p.logits = logits.const_data_ptr<scalar_t>();
    p.labels = labels.const_data_ptr<int64_t>();
    p.rows = n;
    p.vocab = logits.size(1);
    p.logits_row_stride = logits.stride(0);
    p.labels_stride = labels.stride(0);
    p.ignore_index = ignore_index;
    p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
    p.log_weight = log_weight.mutable_data_ptr<acc_t>();
    p.logps = logps.mutable_data_ptr<acc_t>();
    p.lse = lse.mutable_data_ptr<acc_t>();
    p.lse2 = lse2.mutable_data_ptr<acc_t>();
    stats_rows(p);
  });
  return {log_weight, logps, lse, lse2};
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CPU, m) { m.impl("wpo_token_stats", &wpo_token_stats_cpu); }

}  // namespace prefopt::ops
