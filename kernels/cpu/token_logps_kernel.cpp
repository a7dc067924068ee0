// CPU kernel of token_logps: one task per block of rows (at::parallel_for), each row read once in its own
// dtype through an online log-sum-exp accumulated in fp32 (fp64 for fp64). Never materialises the
// log-softmax or an upcast copy of the logits; backward recomputes the softmax from the saved LSE.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "../common/token_logps.h"
#include "../token_logps.h"

namespace prefopt::ops {
namespace {

using kernels::OnlineLogSumExp;

// Rows per task: enough work per task to amortise scheduling when rows are short.
int64_t grain_rows(int64_t vocab) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(vocab, 1)); }

template <typename scalar_t, typename acc_t>
void forward_rows(const kernels::TokenLogpsParams<scalar_t, acc_t>& p) {
  at::parallel_for(0, p.rows, grain_rows(p.vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t label = p.labels[r * p.labels_stride];
      if (label == p.ignore_index) {
        p.logps[r] = acc_t(0);
        p.lse[r] = acc_t(0);
        continue;
      }
      TORCH_CHECK(kernels::label_in_range(label, p.vocab), "labels[", r, "] = ", label,
                  " is out of range: expected a class index in [0, ", p.vocab, ") or ignore_index (",
                  p.ignore_index, ")");
      const scalar_t* row = p.logits + r * p.logits_row_stride;
      auto acc = OnlineLogSumExp<acc_t>::empty();
      for (int64_t j = 0; j < p.vocab; ++j) {
        acc.add(static_cast<acc_t>(row[j]) * p.inv_temperature);
      }
      const acc_t lse = acc.value();
      p.lse[r] = lse;
      p.logps[r] = static_cast<acc_t>(row[label]) * p.inv_temperature - lse;
    }
  });
}

template <typename scalar_t, typename acc_t>
void backward_rows(const kernels::TokenLogpsBackwardParams<scalar_t, acc_t>& p) {
  at::parallel_for(0, p.rows, grain_rows(p.vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      scalar_t* out = p.grad_logits + r * p.grad_stride;
      const int64_t label = p.labels[r * p.labels_stride];
      const acc_t g = p.grad_logps[r];
      if (label == p.ignore_index || g == acc_t(0)) {
        std::fill(out, out + p.vocab, scalar_t(0));
        continue;
      }
      TORCH_CHECK(kernels::label_in_range(label, p.vocab), "labels[", r, "] = ", label,
                  " is out of range: expected a class index in [0, ", p.vocab, ") or ignore_index (",
                  p.ignore_index, ")");
      const scalar_t* row = p.logits + r * p.logits_row_stride;
      const acc_t lse = p.lse[r];
      for (int64_t j = 0; j < p.vocab; ++j) {
        out[j] = static_cast<scalar_t>(
            kernels::token_logps_grad<acc_t>(static_cast<acc_t>(row[j]), j == label, lse, g, p.inv_temperature));
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> token_logps_cpu(const at::Tensor& logits_in, const at::Tensor& labels,
                                                   int64_t ignore_index, double temperature) {
  detail::check_token_logps_inputs(logits_in, labels, temperature);
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  const auto acc_dtype = at::toOpMathType(logits.scalar_type());
  at::Tensor logps = at::empty({logits.size(0)}, logits.options().dtype(acc_dtype));
  at::Tensor lse = at::empty({logits.size(0)}, logits.options().dtype(acc_dtype));
  if (logits.size(0) == 0) return {logps, lse};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_logps_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    kernels::TokenLogpsParams<scalar_t, acc_t> p{};
    p.logits = logits.const_data_ptr<scalar_t>();
    p.labels = labels.const_data_ptr<int64_t>();
    p.rows = logits.size(0);
    p.vocab = logits.size(1);
    p.logits_row_stride = logits.stride(0);
    p.labels_stride = labels.stride(0);
    p.ignore_index = ignore_index;
    p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
    p.logps = logps.mutable_data_ptr<acc_t>();
    p.lse = lse.mutable_data_ptr<acc_t>();
    forward_rows(p);
  });
  return {logps, lse};
}

at::Tensor token_logps_backward_cpu(const at::Tensor& grad_logps_in, const at::Tensor& logits_in,
                                    const at::Tensor& labels, const at::Tensor& lse_in, int64_t ignore_index,
                                    double temperature) {
  detail::check_token_logps_inputs(logits_in, labels, temperature);
  detail::check_token_logps_backward_inputs(grad_logps_in, logits_in, labels, lse_in);
  const at::Tensor logits = detail::vocab_contiguous(logits_in);
  const auto acc_dtype = at::toOpMathType(logits.scalar_type());
  const at::Tensor grad_logps = grad_logps_in.to(acc_dtype).contiguous();
  const at::Tensor lse = lse_in.contiguous();
  at::Tensor grad_logits = at::empty(logits.sizes(), logits.options().memory_format(at::MemoryFormat::Contiguous));
  if (logits.size(0) == 0) return grad_logits;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "token_logps_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    kernels::TokenLogpsBackwardParams<scalar_t, acc_t> p{};
    p.logits = logits.const_data_ptr<scalar_t>();
    p.labels = labels.const_data_ptr<int64_t>();
    p.grad_logps = grad_logps.const_data_ptr<acc_t>();
    p.lse = lse.const_data_ptr<acc_t>();
    p.grad_logits = grad_logits.mutable_data_ptr<scalar_t>();
    p.rows = logits.size(0);
    p.vocab = logits.size(1);
    p.logits_row_stride = logits.stride(0);
    p.labels_stride = labels.stride(0);
    p.grad_stride = grad_logits.stride(0);
    p.ignore_index = ignore_index;
    p.inv_temperature = static_cast<acc_t>(1.0 / temperature);
    backward_rows(p);
  });
  return grad_logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CPU, m) {
  m.impl("token_logps", &token_logps_cpu);
  m.impl("_token_logps_backward", &token_logps_backward_cpu);
}

}  // namespace prefopt::ops
