// Checks of the score tensors and scalar options that losses take; see score_checks.h.
#include "score_checks.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

namespace prefopt::detail {

void check_batch_scores(const at::Tensor& scores, std::string_view name) {
  TORCH_CHECK(scores.defined(), name, " must be a tensor of shape [B], got an undefined tensor");
  TORCH_CHECK(scores.dim() == 1, name, " must have shape [B], got ", scores.sizes());
  TORCH_CHECK(scores.size(0) >= 1, name, " must hold at least one pair, got shape ", scores.sizes());
  TORCH_CHECK(at::isFloatingType(scores.scalar_type()),
              name, " must be floating (float32, bfloat16, float16 or float64), got ", scores.scalar_type());
}

void check_same_batch(const at::Tensor& scores, std::string_view name, const at::Tensor& anchor,
                      std::string_view anchor_name) {
  TORCH_CHECK(scores.defined(), name, " must be a tensor of shape [B] matching ", anchor_name, " ",
              anchor.sizes(), ", got an undefined tensor");
  TORCH_CHECK(scores.sizes() == anchor.sizes(), name, " must have shape [B] matching ", anchor_name, " ",
              anchor.sizes(), ", got ", scores.sizes());
  TORCH_CHECK(scores.scalar_type() == anchor.scalar_type(), name, " must have the dtype of ", anchor_name, " (",
              anchor.scalar_type(), "), got ", scores.scalar_type());
  TORCH_CHECK(scores.device() == anchor.device(), name, " must be on the device of ", anchor_name, " (",
              anchor.device(), "), got ", scores.device());
}

bool any_set(const at::Tensor& bad, std::string_view traced_message) {
  const c10::DispatchKeySet keys = bad.key_set();
  if (keys.has(c10::DispatchKey::Python) || keys.has(c10::DispatchKey::Functionalize)) {
    at::_assert_async(bad.any().logical_not(), traced_message);
    return false;
  }
  return bad.any().item<bool>();
}

void check_finite(const at::Tensor& scores, std::string_view name) {
  const at::Tensor bad = scores.isfinite().logical_not();
  if (any_set(bad, std::string(name) + " must be finite (pass check_finite=false to let NaN/Inf propagate instead)")) {
    const int64_t index = bad.nonzero().select(1, 0)[0].item<int64_t>();
    TORCH_CHECK(false, name, " must be finite, got ", scores[index].item<double>(), " at index ", index,
                " (pass check_finite=false to let NaN/Inf propagate instead)");
  }
}

void check_option_range(double value, std::string_view name, double low, double high, bool low_open) {
  const bool above_low = low_open ? value > low : value >= low;
  // An infinite bound reads as "(0, inf)": finite values only, whatever the bound.
  TORCH_CHECK(std::isfinite(value) && above_low && value <= high, name, " must be in ", low_open ? "(" : "[",
              low, ", ", high, std::isinf(high) ? ")" : "]", ", got ", value);
}

}  // namespace prefopt::detail
