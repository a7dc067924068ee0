// Learning-rate schedule: linear warm-up then cosine decay to a floor, a pure function of the step.
// Never touches an optimizer.
#include <prefopt/train/schedule.h>

#include <algorithm>
#include <cmath>

#include <c10/util/Exception.h>

namespace prefopt::train {

LRSchedule::LRSchedule(double peak_lr, int64_t total_steps, int64_t warmup_steps, double min_lr_ratio,
                       std::string type)
    : peak_lr_(peak_lr),
      total_steps_(total_steps),
      warmup_steps_(warmup_steps),
      min_lr_ratio_(min_lr_ratio),
      type_(std::move(type)) {
  TORCH_CHECK(std::isfinite(peak_lr) && peak_lr >= 0, "learning_rate must be finite and >= 0, got ", peak_lr);
  TORCH_CHECK(total_steps >= 1, "total steps must be >= 1, got ", total_steps);
  TORCH_CHECK(warmup_steps >= 0, "warmup_steps must be >= 0, got ", warmup_steps);
  TORCH_CHECK(min_lr_ratio >= 0 && min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1], got ", min_lr_ratio);
  TORCH_CHECK(type_ == "cosine" || type_ == "constant",
              "lr_scheduler_type must be \"cosine\" or \"constant\", got \"", type_, "\"");
}

double LRSchedule::lr_at(int64_t step) const {
  if (step < warmup_steps_) return peak_lr_ * static_cast<double>(step) / static_cast<double>(warmup_steps_);
  if (type_ == "constant") return peak_lr_;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps_ - warmup_steps_));
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps_) / span);
  return peak_lr_ * (min_lr_ratio_ + (1.0 - min_lr_ratio_) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

void LRSchedule::set_step(int64_t step) {
  TORCH_CHECK(step >= 0, "schedule step must be >= 0, got ", step);
  step_ = step;
}

int64_t LRSchedule::resolve_warmup(int64_t warmup_steps, double warmup_ratio, int64_t total_steps) {
  TORCH_CHECK(warmup_ratio >= 0 && warmup_ratio <= 1, "warmup_ratio must be in [0, 1], got ", warmup_ratio);
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

}  // namespace prefopt::train
