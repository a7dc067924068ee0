// Mixed-precision training: the compute dtype of a run ("no", "bf16", "fp16"), a scope that turns ATen's autocast
// on for the model's forward (matmuls and attention in the low-precision dtype, the float32 master weights and
// everything autocast keeps in float32 untouched), and the dynamic loss scaler fp16 needs (torch.amp.GradScaler's
// rule). It never owns an optimizer or decides when to step; the Trainer does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/types.h>

namespace prefopt::train {

/// How a training step computes (TRL / accelerate's mixed_precision).
enum class MixedPrecision {
  No,    ///< "no": the parameters' dtype throughout
  BF16,  ///< "bf16": autocast to bfloat16, float32 master weights and optimizer state
  FP16,  ///< "fp16": autocast to float16, float32 master weights, dynamic loss scaling
};
std::string to_string(MixedPrecision mode);
/// "no", "bf16" or "fp16"; any other name is an error listing them.
MixedPrecision mixed_precision_from_string(std::string_view name);

/// Empty, or one line saying why `mode` will be slow on this machine's CPU: it lacks the instructions for the
/// low-precision matmuls (AVX-512 BF16 or AMX-BF16 for bf16; AVX-512 FP16 or AMX-FP16 for fp16), so ATen emulates
/// them, many times slower than float32 (docs/performance.md: a bf16 step did not finish in 13 minutes where the
/// float32 one took 78 s). The Trainer prints it for a CPU run.
std::string cpu_mixed_precision_warning(MixedPrecision mode);

/// Autocast on `device` for the scope's lifetime (nothing for MixedPrecision::No); the previous state and dtype
/// are restored at the end, and autocast's cast cache is cleared when the outermost scope ends.
///
/// Example:
/// ```
/// {
///   prefopt::train::AutocastScope amp(prefopt::train::MixedPrecision::BF16, torch::kCPU);
///   auto logits = model->forward(ids, mask);  // bf16 matmuls, fp32 weights
/// }
/// ```
class AutocastScope {
 public:
  AutocastScope(MixedPrecision mode, torch::Device device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::kCPU;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::kFloat;
};

/// Dynamic loss scaling for fp16 (torch.amp.GradScaler's defaults and rule): the loss is multiplied by scale()
/// before the backward; unscale() divides the gradients back and reports whether any is Inf or NaN; update()
/// then halves the scale after an overflow (the step is skipped) or doubles it after growth_interval clean
/// steps in a row. The state (scale, clean steps in a row) is part of a checkpoint.
///
/// Example:
/// ```
/// prefopt::train::LossScaler scaler;
/// (loss * scaler.scale()).backward();
/// const bool overflow = scaler.unscale(model->parameters());
/// if (!overflow) optimizer.step();
/// scaler.update(overflow);
/// ```
class LossScaler {
 public:
  explicit LossScaler(double initial_scale = 65536.0, double growth_factor = 2.0, double backoff_factor = 0.5,
                      int64_t growth_interval = 2000);

  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  /// Restores a checkpointed state; scale must be finite and > 0, growth_tracker >= 0.
  void set_state(double scale, int64_t growth_tracker);

  /// Divides every defined gradient of `parameters` by scale() in place; returns true when any gradient holds
  /// Inf or NaN (the gradients are then meaningless and the step must be skipped).
  bool unscale(const std::vector<torch::Tensor>& parameters) const;
  /// Backs off after an overflow, else counts a clean step and grows the scale every growth_interval of them.
  void update(bool overflow);

 private:
  double scale_;
  double growth_factor_;
  double backoff_factor_;
  int64_t growth_interval_;
  int64_t growth_tracker_ = 0;
};

}  // namespace prefopt::train
