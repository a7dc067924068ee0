// Schema and C++ wrapper of prefopt::token_entropy, plus the input checks every backend runs.
#include "token_entropy.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "token_kl.h"
#include "token_logps.h"

namespace prefopt::ops {

at::Tensor token_entropy(const at::Tensor& logits, const std::optional<at::Tensor>& labels, int64_t ignore_index,
                         double temperature) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("prefopt::token_entropy", "")
          .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, int64_t, double)>();
  return op.call(logits, labels, ignore_index, temperature);
}

namespace detail {
void check_token_entropy_inputs(const at::Tensor& logits, const std::optional<at::Tensor>& labels, double temperature) {
  check_logits_2d(logits, "logits");
  check_row_labels(labels, logits, "logits");
  check_temperature(temperature);
}
}  // namespace detail

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def("token_entropy(Tensor logits, Tensor? labels=None, int ignore_index=-100, float temperature=1.0) -> Tensor");
}

}  // namespace prefopt::ops
