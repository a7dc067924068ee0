// Schema and C++ wrapper of prefopt::wpo_token_stats, plus the input checks every backend runs.
#include "wpo_token_stats.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "token_logps.h"

namespace prefopt::ops {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wpo_token_stats(const at::Tensor& logits,
                                                                           const at::Tensor& labels,
                                                                           int64_t ignore_index, double temperature) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::wpo_token_stats", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, int64_t, double)>();
  return op.call(logits, labels, ignore_index, temperature);
}

namespace detail {
void check_wpo_token_stats_inputs(const at::Tensor& logits, const at::Tensor& labels, double temperature) {
  // The same rules, and messages, as token_logps.
  check_token_logps_inputs(logits, labels, temperature);
}
}  // namespace detail

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "wpo_token_stats(Tensor logits, Tensor labels, int ignore_index=-100, float temperature=1.0) "
      "-> (Tensor log_weight, Tensor logps, Tensor lse, Tensor lse2)");
}

}  // namespace prefopt::ops
