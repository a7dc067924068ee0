// CPU kernel of token_entropy: checks, a params struct, and a call into the vectorised row loop of
// token_entropy_rows.h. Each row is read once in its own dtype; no probability row exists.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/token_entropy.h"
#include "../token_entropy.h"
#include "../token_logps.h"
#include "vec_rows.h"

namespace prefopt::ops {
namespace {

template <typename scalar_t, typename acc_t>
void entropy_rows(const kernels::TokenEntropyParams<scalar_t, acc_t>& p) {
  PREFOPT_CPU_ROWS(token_entropy_forward, p);
}

at::Tensor token_entropy_cpu(const at::Tensor& logits_in, const std::optional<at::Tensor>& labels,
                             int64_t ignore_index, double temperature) {
  detail::check_token_entropy_inputs(logits_in, labels, temperature);
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  at::Tensor entropy = at::empty({logits.size(0)}, logits.options().dtype(at::toOpMathType(logits.scalar_type())));
  if (logits.size(0) == 0) return entropy;
  const bool has_labels = labels.has_value() && labels->defined();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_entropy_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    kernels::TokenEntropyParams<scalar_t, acc_t> p{};
    p.logits = logits.const_data_ptr<scalar_t>();
    p.labels = has_labels ? labels->const_data_ptr<int64_t>() : nullptr;
    p.rows = logits.size(0);
    p.vocab = logits.size(1);
    p.logits_row_stride = logits.stride(0);
    p.labels_stride = has_labels ? labels->stride(0) : 0;
    p.ignore_index = ignore_index;
    p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
    p.entropy = entropy.mutable_data_ptr<acc_t>();
    entropy_rows(p);
  });
  return entropy;
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CPU, m) { m.impl("token_entropy", &token_entropy_cpu); }

}  // namespace prefopt::ops
