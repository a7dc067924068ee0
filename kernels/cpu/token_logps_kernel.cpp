// CPU kernel of token_logps: checks, a params struct, and a call into the vectorised row loops of
// token_logps_rows.h in the instruction set the CPU has (capability.h). Each row is read once in its own
// dtype through a blockwise online log-sum-exp accumulated in fp32 (fp64 for fp64); no log-softmax and no
// upcast copy of the logits exists. The backward recomputes the softmax from the saved LSE in one more
// pass, into a new tensor or, for _token_logps_backward_inplace, into the logits' own buffer.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/token_logps.h"
#include "../token_logps.h"
#include "huge_pages.h"
#include "vec_rows.h"

namespace prefopt::ops {
namespace {

template <typename scalar_t, typename acc_t>
void forward_rows(const kernels::TokenLogpsParams<scalar_t, acc_t>& p) {
  PREFOPT_CPU_ROWS(token_logps_forward, p);
}

template <typename scalar_t, typename acc_t>
void backward_rows(const kernels::TokenLogpsBackwardParams<scalar_t, acc_t>& p) {
  PREFOPT_CPU_ROWS(token_logps_backward, p);
}

std::tuple<at::Tensor, at::Tensor> token_logps_cpu(const at::Tensor& logits_in, const at::Tensor& labels,
                                                   int64_t ignore_index, double temperature,
                                                   bool /*inplace_backward*/) {
  detail::check_token_logps_inputs(logits_in, labels, temperature);
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  const auto acc_dtype = at::toOpMathType(logits.scalar_type());
  at::Tensor logps = at::empty({logits.size(0)}, logits.options().dtype(acc_dtype));
  at::Tensor lse = at::empty({logits.size(0)}, logits.options().dtype(acc_dtype));
  if (logits.size(0) == 0) return {logps, lse};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_logps_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = detail::make_token_logps_params<scalar_t, acc_t>(logits, labels, ignore_index, temperature, logps, lse);
    forward_rows(p);
  });
  return {logps, lse};
}

// Writes the gradient of logits (whose vocabulary dimension is contiguous) into grad_logits, which may be
// logits itself.
void run_backward(const at::Tensor& grad_logps_in, const at::Tensor& logits, const at::Tensor& labels,
                  const at::Tensor& lse_in, int64_t ignore_index, double temperature, const at::Tensor& grad_logits,
                  int64_t label_offset, bool check_labels) {
  if (logits.size(0) == 0 || logits.size(1) == 0) return;
  const auto acc_dtype = at::toOpMathType(logits.scalar_type());
  const at::Tensor grad_logps = grad_logps_in.to(acc_dtype).contiguous();
  const at::Tensor lse = lse_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_logps_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = detail::make_token_logps_backward_params<scalar_t, acc_t>(grad_logps, logits, labels, lse, ignore_index,
                                                                     temperature, grad_logits, label_offset,
                                                                     check_labels);
    backward_rows(p);
  });
}

at::Tensor token_logps_backward_cpu(const at::Tensor& grad_logps, const at::Tensor& logits_in,
                                    const at::Tensor& labels, const at::Tensor& lse, int64_t ignore_index,
                                    double temperature) {
  detail::check_token_logps_inputs(logits_in, labels, temperature);
  detail::check_token_logps_backward_inputs(grad_logps, logits_in, labels, lse);
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  at::Tensor grad_logits = kernels::cpu::empty_for_full_write(logits.sizes(), logits.options());
  run_backward(grad_logps, logits, labels, lse, ignore_index, temperature, grad_logits, 0, true);
  return grad_logits;
}

void token_logps_backward_inplace_cpu(const at::Tensor& grad_logps, const at::Tensor& logits,
                                      const at::Tensor& labels, const at::Tensor& lse, int64_t ignore_index,
                                      double temperature, int64_t label_offset, int64_t vocab) {
  detail::check_token_logps_inputs(logits, labels, temperature);
  detail::check_token_logps_backward_inputs(grad_logps, logits, labels, lse);
  detail::check_token_logps_inplace_inputs(logits, label_offset, vocab);
  const bool whole_vocabulary = label_offset == 0 && (vocab < 0 || vocab == logits.size(1));
  run_backward(grad_logps, logits, labels, lse, ignore_index, temperature, logits, label_offset, whole_vocabulary);
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CPU, m) {
  m.impl("token_logps", &token_logps_cpu);
  m.impl("_token_logps_backward", &token_logps_backward_cpu);
  m.impl("_token_logps_backward_inplace", &token_logps_backward_inplace_cpu);
}

}  // namespace prefopt::ops
