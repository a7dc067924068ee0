// Mixed precision: naming the modes, scoping ATen's autocast, and the fp16 loss scaler's unscale / skip / grow
// rule. Never steps an optimizer.
#include <prefopt/train/mixed_precision.h>

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/cpu/Utils.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

namespace prefopt::train {

std::string to_string(MixedPrecision mode) {
  switch (mode) {
    case MixedPrecision::BF16:
      return "bf16";
    case MixedPrecision::FP16:
      return "fp16";
    default:
      return "no";
  }
}

MixedPrecision mixed_precision_from_string(std::string_view name) {
  if (name == "no") return MixedPrecision::No;
  if (name == "bf16") return MixedPrecision::BF16;
  if (name == "fp16") return MixedPrecision::FP16;
  TORCH_CHECK(false, "unknown mixed_precision \"", std::string(name), "\"; valid values: \"no\", \"bf16\", \"fp16\"");
}

std::string cpu_mixed_precision_warning(MixedPrecision mode) {
  if (mode == MixedPrecision::No) return "";
  const auto caps = at::cpu::get_cpu_capabilities();
  const auto has = [&](const char* key) {
    const auto found = caps.find(key);
    return found != caps.end() && found->second.isBool() && found->second.toBool();
  };
  const bool bf16 = mode == MixedPrecision::BF16;
  if (bf16 ? has("avx512_bf16") || has("amx_bf16") : has("avx512_fp16") || has("amx_fp16")) return "";
  return "mixed_precision \"" + to_string(mode) + "\" on a CPU without " +
         (bf16 ? "AVX-512 BF16 or AMX-BF16" : "AVX-512 FP16 or AMX-FP16") +
         " instructions: ATen emulates the low-precision matmuls, many times slower than float32 here; use "
         "mixed_precision \"no\" on this machine (or a GPU)";
}

AutocastScope::AutocastScope(MixedPrecision mode, torch::Device device) {
  if (mode == MixedPrecision::No) return;
  active_ = true;
  type_ = device.type();
  was_enabled_ = at::autocast::is_autocast_enabled(type_);
  was_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, mode == MixedPrecision::BF16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // The cast cache holds low-precision copies of the weights; they are stale once the weights step.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, was_enabled_);
  at::autocast::set_autocast_dtype(type_, was_dtype_);
}

LossScaler::LossScaler(double initial_scale, double growth_factor, double backoff_factor, int64_t growth_interval)
    : scale_(initial_scale), growth_factor_(growth_factor), backoff_factor_(backoff_factor),
      growth_interval_(growth_interval) {
  TORCH_CHECK(std::isfinite(initial_scale) && initial_scale > 0, "loss scale must be finite and > 0, got ",
              initial_scale);
  TORCH_CHECK(growth_factor > 1, "loss scaler growth_factor must be > 1, got ", growth_factor);
  TORCH_CHECK(backoff_factor > 0 && backoff_factor < 1, "loss scaler backoff_factor must be in (0, 1), got ",
              backoff_factor);
  TORCH_CHECK(growth_interval >= 1, "loss scaler growth_interval must be >= 1, got ", growth_interval);
}

void LossScaler::set_state(double scale, int64_t growth_tracker) {
  TORCH_CHECK(std::isfinite(scale) && scale > 0, "loss scale must be finite and > 0, got ", scale);
  TORCH_CHECK(growth_tracker >= 0, "loss scaler growth_tracker must be >= 0, got ", growth_tracker);
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

bool LossScaler::unscale(const std::vector<torch::Tensor>& parameters) const {
  at::NoGradGuard no_grad;
  torch::Tensor finite;  // one device flag, read once, instead of a host sync per gradient
  for (const auto& p : parameters) {
    torch::Tensor g = p.grad();
    if (!g.defined()) continue;
    g.div_(scale_);
    const torch::Tensor ok = g.isfinite().all();
    finite = finite.defined() ? finite.logical_and(ok) : ok;
  }
  return finite.defined() && !finite.item<bool>();
}

void LossScaler::update(bool overflow) {
  if (overflow) {
    scale_ *= backoff_factor_;
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ == growth_interval_) {
    scale_ *= growth_factor_;
    growth_tracker_ = 0;
  }
}

}  // namespace prefopt::train
