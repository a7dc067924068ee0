// Schema and C++ wrapper of prefopt::token_logps (and its backward), plus the input checks that the CPU,
// CUDA and Meta kernels all run, so every backend rejects the same inputs with the same message.
#include "token_logps.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace prefopt::ops {

std::tuple<at::Tensor, at::Tensor> token_logps(const at::Tensor& logits, const at::Tensor& labels,
                                               int64_t ignore_index, double temperature) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::token_logps", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, int64_t,
                                                                 double)>();
  return op.call(logits, labels, ignore_index, temperature);
}

namespace detail {

at::Tensor token_logps_backward(const at::Tensor& grad_logps, const at::Tensor& logits, const at::Tensor& labels,
                                const at::Tensor& lse, int64_t ignore_index, double temperature) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::_token_logps_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, int64_t, double)>();
  return op.call(grad_logps, logits, labels, lse, ignore_index, temperature);
}

void check_token_logps_inputs(const at::Tensor& logits, const at::Tensor& labels, double temperature) {
  TORCH_CHECK(logits.dim() == 2, "logits must have shape [N, V], got ", logits.sizes());
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()),
              "logits must be a floating tensor (float32, bfloat16, float16 or float64), got ",
              logits.scalar_type());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0),
              "labels must have shape [N] matching logits [", logits.size(0), ", ", logits.size(1), "], got ",
              labels.sizes());
  TORCH_CHECK(labels.scalar_type() == at::kLong, "labels must be int64, got ", labels.scalar_type());
  TORCH_CHECK(labels.device() == logits.device(), "labels must be on the device of logits (", logits.device(),
              "), got ", labels.device());
  TORCH_CHECK(logits.size(1) > 0 || logits.size(0) == 0, "logits must have a vocabulary of at least 1, got ",
              logits.sizes());
  TORCH_CHECK(temperature > 0.0 && std::isfinite(temperature), "temperature must be finite and > 0, got ",
              temperature);
}

void check_token_logps_backward_inputs(const at::Tensor& grad_logps, const at::Tensor& logits,
                                       const at::Tensor& labels, const at::Tensor& lse) {
  const auto acc = at::toOpMathType(logits.scalar_type());
  TORCH_CHECK(grad_logps.dim() == 1 && grad_logps.size(0) == logits.size(0),
              "grad_logps must have shape [N] matching logits [", logits.size(0), ", ", logits.size(1), "], got ",
              grad_logps.sizes());
  TORCH_CHECK(lse.dim() == 1 && lse.size(0) == logits.size(0), "lse must have shape [N] matching logits [",
              logits.size(0), ", ", logits.size(1), "], got ", lse.sizes());
  TORCH_CHECK(lse.scalar_type() == acc, "lse must have dtype ", acc, ", got ", lse.scalar_type());
  TORCH_CHECK(grad_logps.device() == logits.device() && lse.device() == logits.device() &&
                  labels.device() == logits.device(),
              "grad_logps, labels and lse must be on the device of logits (", logits.device(), ")");
}

at::Tensor vocab_contiguous(const at::Tensor& logits) {
  return logits.stride(1) == 1 || logits.size(1) <= 1 ? logits : logits.contiguous();
}

}  // namespace detail

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "token_logps(Tensor logits, Tensor labels, int ignore_index=-100, float temperature=1.0) "
      "-> (Tensor logps, Tensor lse)");
  m.def(
      "_token_logps_backward(Tensor grad_logps, Tensor logits, Tensor labels, Tensor lse, int ignore_index, "
      "float temperature) -> Tensor");
}

}  // namespace prefopt::ops
