// Schema and C++ wrapper of prefopt::token_kl (and its backward), plus the input checks that the CPU, CUDA and
// Meta kernels all run (and that token_entropy and wpo_token_stats share), so every backend rejects the same
// inputs with the same message.
#include "token_kl.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>

#include "token_logps.h"

namespace prefopt::ops {

std::tuple<at::Tensor, at::Tensor, at::Tensor> token_kl(const at::Tensor& policy_logits, const at::Tensor& ref_logits,
                                                        const std::optional<at::Tensor>& labels, int64_t ignore_index,
                                                        double temperature) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::token_kl", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, int64_t, double)>();
  return op.call(policy_logits, ref_logits, labels, ignore_index, temperature);
}

namespace detail {

at::Tensor token_kl_backward(const at::Tensor& grad_kl, const at::Tensor& policy_logits, const at::Tensor& ref_logits,
                             const std::optional<at::Tensor>& labels, const at::Tensor& policy_lse,
                             const at::Tensor& ref_lse, int64_t ignore_index, double temperature) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::_token_kl_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, const at::Tensor&, const at::Tensor&,
                                         int64_t, double)>();
  return op.call(grad_kl, policy_logits, ref_logits, labels, policy_lse, ref_lse, ignore_index, temperature);
}

void check_logits_2d(const at::Tensor& logits, const char* name) {
  TORCH_CHECK(logits.dim() == 2, name, " must have shape [N, V], got ", logits.sizes());
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), name,
              " must be a floating tensor (float32, bfloat16, float16 or float64), got ", logits.scalar_type());
  TORCH_CHECK(logits.size(1) > 0 || logits.size(0) == 0, name, " must have a vocabulary of at least 1, got ",
              logits.sizes());
}

void check_row_labels(const std::optional<at::Tensor>& labels, const at::Tensor& logits, const char* logits_name) {
  if (!labels.has_value() || !labels->defined()) return;
  TORCH_CHECK(labels->dim() == 1 && labels->size(0) == logits.size(0), "labels must have shape [N] matching ",
              logits_name, " [", logits.size(0), ", ", logits.size(1), "], got ", labels->sizes());
  TORCH_CHECK(labels->scalar_type() == at::kLong, "labels must be int64, got ", labels->scalar_type());
  TORCH_CHECK(labels->device() == logits.device(), "labels must be on the device of ", logits_name, " (",
              logits.device(), "), got ", labels->device());
}

void check_token_kl_inputs(const at::Tensor& policy_logits, const at::Tensor& ref_logits,
                           const std::optional<at::Tensor>& labels, double temperature) {
  check_logits_2d(policy_logits, "policy_logits");
  check_logits_2d(ref_logits, "ref_logits");
  TORCH_CHECK(ref_logits.sizes() == policy_logits.sizes(), "ref_logits must have the shape of policy_logits ",
              policy_logits.sizes(), ", got ", ref_logits.sizes());
  TORCH_CHECK(ref_logits.scalar_type() == policy_logits.scalar_type(), "ref_logits must have the dtype of policy_logits (",
              policy_logits.scalar_type(), "), got ", ref_logits.scalar_type());
  TORCH_CHECK(ref_logits.device() == policy_logits.device(), "ref_logits must be on the device of policy_logits (",
              policy_logits.device(), "), got ", ref_logits.device());
  check_row_labels(labels, policy_logits, "policy_logits");
  check_temperature(temperature);
}

void check_token_kl_backward_inputs(const at::Tensor& grad_kl, const at::Tensor& policy_logits,
                                    const at::Tensor& policy_lse, const at::Tensor& ref_lse) {
  const auto acc = at::toOpMathType(policy_logits.scalar_type());
  const int64_t n = policy_logits.size(0);
  TORCH_CHECK(grad_kl.dim() == 1 && grad_kl.size(0) == n, "grad_kl must have shape [N] matching policy_logits [", n,
              ", ", policy_logits.size(1), "], got ", grad_kl.sizes());
  for (const auto* t : {&policy_lse, &ref_lse}) {
    const char* name = t == &policy_lse ? "policy_lse" : "ref_lse";
    TORCH_CHECK(t->dim() == 1 && t->size(0) == n, name, " must have shape [N] matching policy_logits [", n, ", ",
                policy_logits.size(1), "], got ", t->sizes());
    TORCH_CHECK(t->scalar_type() == acc, name, " must have dtype ", acc, ", got ", t->scalar_type());
    TORCH_CHECK(t->device() == policy_logits.device(), name, " must be on the device of policy_logits");
  }
  TORCH_CHECK(grad_kl.device() == policy_logits.device(), "grad_kl must be on the device of policy_logits (",
              policy_logits.device(), "), got ", grad_kl.device());
}

}  // namespace detail

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "token_kl(Tensor policy_logits, Tensor ref_logits, Tensor? labels=None, int ignore_index=-100, "
      "float temperature=1.0) -> (Tensor kl, Tensor policy_lse, Tensor ref_lse)");
  m.def(
      "_token_kl_backward(Tensor grad_kl, Tensor policy_logits, Tensor ref_logits, Tensor? labels, "
      "Tensor policy_lse, Tensor ref_lse, int ignore_index, float temperature) -> Tensor");
}

}  // namespace prefopt::ops
