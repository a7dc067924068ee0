// The learning-rate schedule: linear warm-up from 0, then cosine decay to a minimum ratio of the peak (or a
// constant rate), as a function of the optimizer step. Its only state is the step, so a checkpoint stores one
// integer; it never touches an optimizer (the Trainer writes the rate it returns into the parameter groups).
#pragma once

#include <cstdint>
#include <string>

namespace prefopt::train {

/// lr(step) for the optimizer step `step` (0-based: the rate used by the step-th update), total steps N,
/// warm-up W, peak rate P, floor ratio m:
/// - step < W: P * step / W (the first update uses 0 when W > 0, as transformers'
///   get_cosine_schedule_with_warmup);
/// - otherwise, "cosine": P * (m + (1 - m) * 0.5 * (1 + cos(pi * progress))), progress = (step - W) / max(1, N - W);
///   "constant": P.
///
/// Example:
/// ```
/// prefopt::train::LRSchedule s(1e-4, /*total_steps=*/100, /*warmup_steps=*/10, /*min_lr_ratio=*/0.1);
/// s.lr();     // 0 (step 0)
/// s.step();   // advances to step 1
/// s.lr_at(10);  // 1e-4; s.lr_at(100) == 1e-5
/// ```
class LRSchedule {
 public:
  /// type: "cosine" or "constant"; peak_lr >= 0, total_steps >= 1, 0 <= warmup_steps, min_lr_ratio in [0, 1].
  LRSchedule(double peak_lr, int64_t total_steps, int64_t warmup_steps, double min_lr_ratio = 0.0,
             std::string type = "cosine");
  /// The rate of update number step (0-based).
  double lr_at(int64_t step) const;
  /// The rate of the current step.
  double lr() const { return lr_at(step_); }
  void step() { ++step_; }
  int64_t current_step() const { return step_; }
  void set_step(int64_t step);

  /// warmup_steps when > 0, else ceil(warmup_ratio * total_steps) (transformers' get_warmup_steps).
  static int64_t resolve_warmup(int64_t warmup_steps, double warmup_ratio, int64_t total_steps);

 private:
  double peak_lr_;
  int64_t total_steps_, warmup_steps_;
  double min_lr_ratio_;
  std::string type_;
  int64_t step_ = 0;
};

}  // namespace prefopt::train
