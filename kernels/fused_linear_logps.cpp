// Schema, C++ wrapper, checks and the chunked implementation of prefopt::fused_linear_logps: log-probs of labels
// under softmax(hidden weight^T / T) without an [N, V] tensor. The forward takes chunks of rows whose logits fit
// the memory budget, runs the matmul on the chunk and the token_logps kernel on its logits (which saves each
// row's LSE). The backward takes chunks of the vocabulary: it recomputes the chunk's logits [N, Vc], turns them
// in place into g (onehot - softmax) / T with the saved LSE (_token_logps_backward_inplace), and uses them for
// grad_weight[chunk] = G^T hidden (written once, never accumulated) and grad_hidden += G weight[chunk] (an
// fp32 accumulator for bf16/fp16, N x H floats). Only when even 256 vocabulary columns of all N rows exceed the
// budget are rows tiled too, and each grad_weight chunk is then summed over the row tiles in fp32.
// Peak extra memory: one chunk plus the gradients themselves.
#include "fused_linear_logps.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

#include "token_logps.h"

namespace prefopt::ops {

std::tuple<at::Tensor, at::Tensor> fused_linear_logps(const at::Tensor& hidden, const at::Tensor& weight,
                                                      const at::Tensor& labels, int64_t ignore_index,
                                                      double temperature, int64_t chunk_bytes) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::fused_linear_logps", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&, int64_t, double, int64_t)>();
  return op.call(hidden, weight, labels, ignore_index, temperature, chunk_bytes);
}

namespace detail {

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_backward(const at::Tensor& grad_logps, const at::Tensor& hidden,
                                                               const at::Tensor& weight, const at::Tensor& labels,
                                                               const at::Tensor& lse, int64_t ignore_index,
                                                               double temperature, int64_t chunk_bytes,
                                                               std::array<bool, 2> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::_fused_linear_logps_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&, int64_t, double, int64_t,
                                                                 std::array<bool, 2>)>();
  return op.call(grad_logps, hidden, weight, labels, lse, ignore_index, temperature, chunk_bytes, output_mask);
}

void check_fused_linear_logps_inputs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                     double temperature, int64_t chunk_bytes) {
  TORCH_CHECK(hidden.dim() == 2, "hidden must have shape [N, H], got ", hidden.sizes());
  TORCH_CHECK(at::isFloatingType(hidden.scalar_type()),
              "hidden must be a floating tensor (float32, bfloat16, float16 or float64), got ", hidden.scalar_type());
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == hidden.size(1), "weight must have shape [V, H] with H = ",
              hidden.size(1), " matching hidden [", hidden.size(0), ", ", hidden.size(1), "], got ", weight.sizes());
  TORCH_CHECK(weight.size(0) > 0, "weight must have a vocabulary of at least 1, got ", weight.sizes());
  TORCH_CHECK(weight.scalar_type() == hidden.scalar_type(), "weight must have the dtype of hidden (",
              hidden.scalar_type(), "), got ", weight.scalar_type());
  TORCH_CHECK(weight.device() == hidden.device(), "weight must be on the device of hidden (", hidden.device(),
              "), got ", weight.device());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0), "labels must have shape [N] matching hidden [",
              hidden.size(0), ", ", hidden.size(1), "], got ", labels.sizes());
  TORCH_CHECK(labels.scalar_type() == at::kLong, "labels must be int64, got ", labels.scalar_type());
  TORCH_CHECK(labels.device() == hidden.device(), "labels must be on the device of hidden (", hidden.device(),
              "), got ", labels.device());
  check_temperature(temperature);
  TORCH_CHECK(chunk_bytes > 0, "chunk_bytes must be > 0, got ", chunk_bytes);
}

namespace {

// On the CPU a bad label is reported by index before any matmul runs (a host check costs nothing there). On
// CUDA the token_logps kernel's device-side assert reports it (a host check would synchronise).
void check_labels_in_range_cpu(const at::Tensor& labels, int64_t vocab, int64_t ignore_index) {
  if (!labels.is_cpu() || labels.numel() == 0) return;
  const at::Tensor bad = labels.ne(ignore_index).logical_and(labels.lt(0).logical_or(labels.ge(vocab)));
  if (!bad.any().item<bool>()) return;
  const int64_t r = bad.nonzero().select(1, 0)[0].item<int64_t>();
  TORCH_CHECK(false, "labels[", r, "] = ", labels[r].item<int64_t>(), " is out of range: expected a class index in [0, ",
              vocab, ") or ignore_index (", ignore_index, ")");
}

int64_t clamp_count(int64_t budget_bytes, int64_t bytes_per_unit, int64_t total) {
  return std::clamp<int64_t>(budget_bytes / std::max<int64_t>(bytes_per_unit, 1), 1, std::max<int64_t>(total, 1));
}

bool low_precision(at::ScalarType t) { return t == at::kBFloat16 || t == at::kHalf; }

}  // namespace

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_forward_impl(const at::Tensor& hidden, const at::Tensor& weight,
                                                                   const at::Tensor& labels, int64_t ignore_index,
                                                                   double temperature, int64_t chunk_bytes) {
  check_fused_linear_logps_inputs(hidden, weight, labels, temperature, chunk_bytes);
  const int64_t n = hidden.size(0), vocab = weight.size(0);
  const auto options = hidden.options().dtype(at::toOpMathType(hidden.scalar_type()));
  at::Tensor logps = at::empty({n}, options), lse = at::empty({n}, options);
  if (n == 0) return {logps, lse};
  check_labels_in_range_cpu(labels, vocab, ignore_index);
  // Rows per chunk: their [rows, V] logits fit the budget.
  const int64_t rows = clamp_count(chunk_bytes, vocab * hidden.element_size(), n);
  const at::Tensor weight_t = weight.t();
  for (int64_t r0 = 0; r0 < n; r0 += rows) {
    const int64_t r = std::min(rows, n - r0);
    const at::Tensor logits = at::mm(hidden.narrow(0, r0, r), weight_t);
    auto [chunk_logps, chunk_lse] = token_logps(logits, labels.narrow(0, r0, r), ignore_index, temperature);
    logps.narrow(0, r0, r).copy_(chunk_logps);
    lse.narrow(0, r0, r).copy_(chunk_lse);
  }
  return {logps, lse};
}

std::tuple<at::Tensor, at::Tensor> fused_linear_logps_backward_impl(const at::Tensor& grad_logps_in,
                                                                    const at::Tensor& hidden, const at::Tensor& weight,
                                                                    const at::Tensor& labels, const at::Tensor& lse,
                                                                    int64_t ignore_index, double temperature,
                                                                    int64_t chunk_bytes,
                                                                    std::array<bool, 2> output_mask) {
  check_fused_linear_logps_inputs(hidden, weight, labels, temperature, chunk_bytes);
  const int64_t n = hidden.size(0), vocab = weight.size(0);
  const auto acc_dtype = at::toOpMathType(hidden.scalar_type());
  TORCH_CHECK(grad_logps_in.dim() == 1 && grad_logps_in.size(0) == n, "grad_logps must have shape [N] matching hidden [",
              n, ", ", hidden.size(1), "], got ", grad_logps_in.sizes());
  TORCH_CHECK(lse.dim() == 1 && lse.size(0) == n, "lse must have shape [N] matching hidden [", n, ", ", hidden.size(1),
              "], got ", lse.sizes());
  TORCH_CHECK(lse.scalar_type() == acc_dtype, "lse must have dtype ", acc_dtype, ", got ", lse.scalar_type());
  const bool want_hidden = output_mask[0], want_weight = output_mask[1];
  const bool low = low_precision(hidden.scalar_type());
  // grad_hidden sums one term per vocabulary chunk: for bf16/fp16 it is accumulated in fp32.
  at::Tensor grad_hidden_acc;
  if (want_hidden) grad_hidden_acc = at::zeros(hidden.sizes(), hidden.options().dtype(low ? at::kFloat : hidden.scalar_type()));
  at::Tensor grad_weight;
  if (want_weight) grad_weight = at::empty(weight.sizes(), weight.options().memory_format(at::MemoryFormat::Contiguous));
  if (n == 0 || (!want_hidden && !want_weight)) {
    if (want_weight) grad_weight.zero_();
    return {want_hidden ? grad_hidden_acc.to(hidden.scalar_type()) : at::Tensor(), grad_weight};
  }
  const at::Tensor grad_logps = grad_logps_in.to(acc_dtype).contiguous();
  // On the CPU the bf16/fp16 chunk is widened to fp32 for the grad_hidden matmul: count those bytes too.
  const bool widen_on_cpu = low && want_hidden && !hidden.is_cuda();
  const int64_t bytes_per_element = hidden.element_size() + (widen_on_cpu ? 4 : 0);
  // Columns per chunk for all N rows; if even 256 columns of all rows exceed the budget, rows are tiled too.
  constexpr int64_t kMinColumns = 256;
  const int64_t min_cols = std::min(vocab, kMinColumns);
  const int64_t rows = clamp_count(chunk_bytes, min_cols * bytes_per_element, n);
  const int64_t cols = std::max(min_cols, clamp_count(chunk_bytes, rows * bytes_per_element, vocab));
  const bool tiled = rows < n;
  // Times a product of bf16/fp16 operands is rounded before it is summed: once per vocabulary chunk for
  // grad_hidden, and once per row tile for grad_weight; both sums are kept in fp32 so that only the final
  // result is rounded to the input dtype, as in the unchunked matmul.
  auto add_product = [&](at::Tensor& acc, const at::Tensor& a, const at::Tensor& b) {
    if (!low) {
      acc.addmm_(a, b);
    } else if (hidden.is_cuda()) {
      acc.add_(at::mm(a, b, at::kFloat));  // bf16/fp16 operands, fp32 result
    } else {
      acc.addmm_(a.to(at::kFloat), b.to(at::kFloat));
    }
  };
  for (int64_t v0 = 0; v0 < vocab; v0 += cols) {
    const int64_t c = std::min(cols, vocab - v0);
    const at::Tensor w = weight.narrow(0, v0, c);
    at::Tensor gw_acc;  // [c, H] in fp32 (or the dtype), when row tiles must be summed
    if (want_weight && tiled) gw_acc = at::zeros({c, weight.size(1)}, weight.options().dtype(low ? at::kFloat : weight.scalar_type()));
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
      const int64_t r = std::min(rows, n - r0);
      const at::Tensor h = hidden.narrow(0, r0, r);
      at::Tensor z = at::mm(h, w.t());  // [r, c] logits of this chunk, then (in place) their gradient
      token_logps_backward_inplace(grad_logps.narrow(0, r0, r), z, labels.narrow(0, r0, r), lse.narrow(0, r0, r),
                                   ignore_index, temperature, v0, vocab);
      if (want_weight) {
        if (tiled) {
          add_product(gw_acc, z.t(), h);
        } else {
          at::Tensor gw = grad_weight.narrow(0, v0, c);
          at::mm_out(gw, z.t(), h);
        }
      }
      if (want_hidden) {
        at::Tensor acc = grad_hidden_acc.narrow(0, r0, r);
        add_product(acc, z, w);
      }
    }
    if (gw_acc.defined()) grad_weight.narrow(0, v0, c).copy_(gw_acc);
  }
  at::Tensor grad_hidden;
  if (want_hidden) grad_hidden = low ? grad_hidden_acc.to(hidden.scalar_type()) : grad_hidden_acc;
  return {grad_hidden, grad_weight};
}

}  // namespace detail

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "fused_linear_logps(Tensor hidden, Tensor weight, Tensor labels, int ignore_index=-100, "
      "float temperature=1.0, int chunk_bytes=134217728) -> (Tensor logps, Tensor lse)");
  m.def(
      "_fused_linear_logps_backward(Tensor grad_logps, Tensor hidden, Tensor weight, Tensor labels, Tensor lse, "
      "int ignore_index, float temperature, int chunk_bytes, bool[2] output_mask) "
      "-> (Tensor grad_hidden, Tensor grad_weight)");
}

}  // namespace prefopt::ops
