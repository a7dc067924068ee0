// Schema, C++ wrapper and checks of prefopt::pairwise_margin_reduce (see pairwise_margin_reduce.h for the
// math and how the listwise losses use it). The checks run in every backend, so all reject the same inputs
// with the same message.
#include "pairwise_margin_reduce.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>

#include "common/pairwise_margin_reduce.h"

namespace prefopt::ops {

std::tuple<at::Tensor, at::Tensor> pairwise_margin_reduce(const at::Tensor& scores,
                                                          const std::optional<at::Tensor>& labels,
                                                          const std::optional<at::Tensor>& mask,
                                                          const std::optional<at::Tensor>& gain,
                                                          const std::optional<at::Tensor>& discount,
                                                          const std::optional<at::Tensor>& positions,
                                                          const PairwiseMarginOptions& options) {
  using Opt = const std::optional<at::Tensor>&;
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::pairwise_margin_reduce", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, Opt, Opt, Opt, Opt, Opt,
                                                                 c10::string_view, c10::string_view, c10::string_view,
                                                                 double, int64_t)>();
  return op.call(scores, labels, mask, gain, discount, positions, options.fn(), options.reduce(), options.pairs(),
                 options.label_margin(), options.max_distance());
}

namespace detail {

at::Tensor pairwise_margin_reduce_backward(const at::Tensor& grad_per_anchor, const at::Tensor& scores,
                                           const at::Tensor& per_anchor, const std::optional<at::Tensor>& labels,
                                           const std::optional<at::Tensor>& mask,
                                           const std::optional<at::Tensor>& gain,
                                           const std::optional<at::Tensor>& discount,
                                           const std::optional<at::Tensor>& positions, c10::string_view fn,
                                           c10::string_view reduce, c10::string_view pairs, double label_margin,
                                           int64_t max_distance) {
  using Opt = const std::optional<at::Tensor>&;
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::_pairwise_margin_reduce_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, Opt, Opt, Opt, Opt,
                                         Opt, c10::string_view, c10::string_view, c10::string_view, double, int64_t)>();
  return op.call(grad_per_anchor, scores, per_anchor, labels, mask, gain, discount, positions, fn, reduce, pairs,
                 label_margin, max_distance);
}

PairwiseConfig parse_pairwise_options(c10::string_view fn, c10::string_view reduce, c10::string_view pairs) {
  PairwiseConfig c{};
  if (fn == "logsigmoid") {
    c.fn = kernels::kPairLogSigmoid;
  } else if (fn == "log1p_exp_neg") {
    c.fn = kernels::kPairLog1pExpNeg;
  } else if (fn == "exp") {
    c.fn = kernels::kPairExp;
  } else if (fn == "exp_neg") {
    c.fn = kernels::kPairExpNeg;
  } else {
    TORCH_CHECK(false, "fn must be one of logsigmoid, log1p_exp_neg, exp, exp_neg, got '", fn, "'");
  }
  if (reduce == "sum") {
    c.reduce = kernels::kReduceSum;
  } else if (reduce == "logsumexp") {
    c.reduce = kernels::kReduceLogSumExp;
    TORCH_CHECK(c.fn == kernels::kPairExp || c.fn == kernels::kPairExpNeg,
                "reduce 'logsumexp' needs fn exp or exp_neg, got '", fn, "'");
  } else {
    TORCH_CHECK(false, "reduce must be sum or logsumexp, got '", reduce, "'");
  }
  if (pairs == "label_order") {
    c.rule = kernels::kPairsLabelOrder;
  } else if (pairs == "all") {
    c.rule = kernels::kPairsAll;
  } else {
    TORCH_CHECK(false, "pairs must be label_order or all, got '", pairs, "'");
  }
  return c;
}

void check_pairwise_inputs(const at::Tensor& scores, const std::optional<at::Tensor>& labels,
                           const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& gain,
                           const std::optional<at::Tensor>& discount, const std::optional<at::Tensor>& positions,
                           c10::string_view fn, c10::string_view reduce, c10::string_view pairs,
                           double label_margin, int64_t max_distance) {
  TORCH_CHECK(scores.dim() == 2, "scores must have shape [B, K], got ", scores.sizes());
  TORCH_CHECK(at::isFloatingType(scores.scalar_type()),
              "scores must be a floating tensor (float32, bfloat16, float16 or float64), got ", scores.scalar_type());
  const PairwiseConfig config = parse_pairwise_options(fn, reduce, pairs);
  auto check_item = [&](const std::optional<at::Tensor>& t, const char* name) {
    if (!t.has_value() || !t->defined()) return;
    TORCH_CHECK(t->sizes() == scores.sizes(), name, " must have shape [B, K] matching scores ", scores.sizes(),
                ", got ", t->sizes());
    TORCH_CHECK(t->device() == scores.device(), name, " must be on the device of scores (", scores.device(),
                "), got ", t->device());
    TORCH_CHECK(!t->is_complex(), name, " must be real, got ", t->scalar_type());
  };
  check_item(labels, "labels");
  check_item(mask, "mask");
  check_item(gain, "gain");
  check_item(discount, "discount");
  check_item(positions, "positions");
  if (mask.has_value() && mask->defined()) {
    TORCH_CHECK(mask->scalar_type() == at::kBool, "mask must be bool, got ", mask->scalar_type());
  }
  const bool has_labels = labels.has_value() && labels->defined();
  TORCH_CHECK(has_labels || config.rule == kernels::kPairsAll,
              "labels are required with pairs 'label_order' (or use pairs 'all')");
  TORCH_CHECK(std::isfinite(label_margin) && label_margin >= 0.0, "label_margin must be finite and >= 0, got ",
              label_margin);
  TORCH_CHECK(max_distance >= -1, "max_distance must be >= 0, or -1 for no bound, got ", max_distance);
  TORCH_CHECK(max_distance < 0 || (positions.has_value() && positions->defined()),
              "max_distance needs positions (each item's rank in label order)");
}

at::Tensor pairwise_item_tensor(const std::optional<at::Tensor>& t, at::ScalarType dtype) {
  if (!t.has_value() || !t->defined()) return at::Tensor();
  return t->to(dtype).contiguous();
}

void check_pairwise_backward_shapes(const at::Tensor& grad_per_anchor, const at::Tensor& per_anchor,
                                   const at::Tensor& scores) {
  TORCH_CHECK(grad_per_anchor.sizes() == scores.sizes() && per_anchor.sizes() == scores.sizes(),
              "grad_per_anchor and per_anchor must have the shape of scores ", scores.sizes(), ", got ",
              grad_per_anchor.sizes(), " and ", per_anchor.sizes());
}

PairwiseItems pairwise_items(const at::Tensor& scores, const std::optional<at::Tensor>& labels,
                             const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& gain,
                             const std::optional<at::Tensor>& discount, const std::optional<at::Tensor>& positions,
                             at::ScalarType acc) {
  return {scores.to(acc).contiguous(),        pairwise_item_tensor(labels, acc),
          pairwise_item_tensor(mask, at::kBool), pairwise_item_tensor(gain, acc),
          pairwise_item_tensor(discount, acc),  pairwise_item_tensor(positions, acc)};
}

}  // namespace detail

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "pairwise_margin_reduce(Tensor scores, Tensor? labels=None, Tensor? mask=None, Tensor? gain=None, "
      "Tensor? discount=None, Tensor? positions=None, str fn=\"log1p_exp_neg\", str reduce=\"sum\", "
      "str pairs=\"label_order\", float label_margin=0.0, int max_distance=-1) -> (Tensor per_anchor, "
      "Tensor weight_sum)");
  m.def(
      "_pairwise_margin_reduce_backward(Tensor grad_per_anchor, Tensor scores, Tensor per_anchor, Tensor? labels, "
      "Tensor? mask, Tensor? gain, Tensor? discount, Tensor? positions, str fn, str reduce, str pairs, "
      "float label_margin, int max_distance) -> Tensor");
}

}  // namespace prefopt::ops
