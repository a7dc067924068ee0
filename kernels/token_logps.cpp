// Schema and C++ wrapper of prefopt::token_logps (and its backward, out of place and in place), plus the input checks that the CPU,
// CUDA and Meta kernels all run, so every backend rejects the same inputs with the same message.
#include "token_logps.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace prefopt::ops {

std::tuple<at::Tensor, at::Tensor> token_logps(const at::Tensor& logits, const at::Tensor& labels,
                                               int64_t ignore_index, double temperature, bool inplace_backward) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::token_logps", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, int64_t,
                                                                 double, bool)>();
  return op.call(logits, labels, ignore_index, temperature, inplace_backward);
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

void token_logps_backward_inplace(const at::Tensor& grad_logps, const at::Tensor& logits, const at::Tensor& labels,
                                  const at::Tensor& lse, int64_t ignore_index, double temperature,
                                  int64_t label_offset, int64_t vocab) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::_token_logps_backward_inplace", "")
                       .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   int64_t, double, int64_t, int64_t)>();
  op.call(grad_logps, logits, labels, lse, ignore_index, temperature, label_offset, vocab);
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
  check_temperature(temperature);
}

void check_temperature(double temperature) {
  // The kernels multiply by 1/T in float32: a temperature below ~3e-39 would turn that into inf and every
  // log-prob into NaN, so it is refused here rather than computed.
  TORCH_CHECK(temperature > 0.0 && std::isfinite(temperature), "temperature must be finite and > 0, got ",
              temperature);
  TORCH_CHECK(std::isfinite(static_cast<float>(1.0 / temperature)),
              "temperature must be at least 3e-39 (1/temperature must be finite in float32), got ", temperature);
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

void check_token_logps_inplace_inputs(const at::Tensor& logits, int64_t label_offset, int64_t vocab) {
  TORCH_CHECK(logits.size(1) <= 1 || logits.stride(1) == 1,
              "logits must have a contiguous vocabulary dimension for the in-place backward, got strides ",
              logits.strides());
  TORCH_CHECK(logits.size(0) <= 1 || logits.stride(0) >= logits.size(1),
              "logits must not have overlapping rows for the in-place backward, got strides ", logits.strides());
  TORCH_CHECK(label_offset >= 0, "label_offset must be >= 0, got ", label_offset);
  TORCH_CHECK(vocab < 0 || label_offset + logits.size(1) <= vocab, "the slice [", label_offset, ", ",
              label_offset + logits.size(1), ") of the logits must lie within the vocabulary of ", vocab,
              " classes");
}

at::Tensor vocab_contiguous(const at::Tensor& logits) {
  return logits.stride(1) == 1 || logits.size(1) <= 1 ? logits : logits.contiguous();
}

}  // namespace detail

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "token_logps(Tensor logits, Tensor labels, int ignore_index=-100, float temperature=1.0, "
      "bool inplace_backward=False) -> (Tensor logps, Tensor lse)");
  m.def(
      "_token_logps_backward(Tensor grad_logps, Tensor logits, Tensor labels, Tensor lse, int ignore_index, "
      "float temperature) -> Tensor");
  m.def(
      "_token_logps_backward_inplace(Tensor grad_logps, Tensor(a!) logits, Tensor labels, Tensor lse, "
      "int ignore_index, float temperature, int label_offset=0, int vocab=-1) -> ()");
}

}  // namespace prefopt::ops
