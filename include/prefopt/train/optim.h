// Optimisation helpers of the Trainer: the AdamW optimizer it uses, writing a scheduled rate into it, clipping
// gradients by their global norm, and seeding. Never computes a loss or decides when to step.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/optim/adamw.h>
#include <torch/types.h>

namespace prefopt::train {

/// torch::optim::AdamW over `parameters` (those with requires_grad), one parameter group.
///
/// Example:
/// ```
/// auto opt = prefopt::train::make_adamw(model->parameters(), 1e-4, 0.9, 0.999, 1e-8, 0.01);
/// ```
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<torch::Tensor>& parameters, double lr, double beta1,
                                                double beta2, double eps, double weight_decay);

/// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

/// The global L2 norm of the gradients of `parameters` (those without a gradient are skipped), accumulated in
/// float64; when max_norm > 0 and the norm exceeds it, every gradient is scaled in place by max_norm / (norm + 1e-6)
/// (torch.nn.utils.clip_grad_norm_'s rule). Returns the norm before clipping. A non-finite norm raises an error
/// (the gradients are left as they are), since stepping on it would write NaN into the weights.
///
/// Example:
/// ```
/// double norm = prefopt::train::clip_grad_norm(model->parameters(), 1.0);
/// ```
double clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm);

/// Seeds torch's default generators (CPU, and CUDA when present) with `seed`.
void seed_torch(uint64_t seed);

}  // namespace prefopt::train
