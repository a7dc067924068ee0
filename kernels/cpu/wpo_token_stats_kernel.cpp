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
    auto p = detail::make_wpo_token_stats_params<scalar_t, acc_t>(logits, labels, ignore_index, temperature, log_weight,
                                                                 logps, lse, lse2);
    stats_rows(p);
  });
  return {log_weight, logps, lse, lse2};
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CPU, m) { m.impl("wpo_token_stats", &wpo_token_stats_cpu); }

}  // namespace prefopt::ops
