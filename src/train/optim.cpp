// AdamW construction, learning-rate updates, global-norm gradient clipping and seeding. Never decides when to step.
#include <prefopt/train/optim.h>

#include <cmath>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <ATen/Context.h>

namespace prefopt::train {

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<torch::Tensor>& parameters, double lr, double beta1,
                                                double beta2, double eps, double weight_decay) {
  TORCH_CHECK(lr >= 0 && std::isfinite(lr), "learning_rate must be finite and >= 0, got ", lr);
  TORCH_CHECK(beta1 >= 0 && beta1 < 1, "adam_beta1 must be in [0, 1), got ", beta1);
  TORCH_CHECK(beta2 >= 0 && beta2 < 1, "adam_beta2 must be in [0, 1), got ", beta2);
  TORCH_CHECK(eps > 0, "adam_epsilon must be > 0, got ", eps);
  TORCH_CHECK(weight_decay >= 0, "weight_decay must be >= 0, got ", weight_decay);
  std::vector<torch::Tensor> trainable;
  for (const auto& p : parameters) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  TORCH_CHECK(!trainable.empty(), "the model has no trainable parameter");
  return std::make_unique<torch::optim::AdamW>(
      trainable, torch::optim::AdamWOptions(lr).betas({beta1, beta2}).eps(eps).weight_decay(weight_decay));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

double clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  TORCH_CHECK(max_norm >= 0 && std::isfinite(max_norm), "max_grad_norm must be finite and >= 0, got ", max_norm);
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  // Sum of squares in float64, in parameter order, so the norm is reproducible bit for bit on the CPU.
  at::Tensor total = at::zeros({}, grads[0].options().dtype(at::kDouble));
  for (const auto& g : grads) total += g.to(at::kDouble).pow(2).sum();
  const double norm = std::sqrt(total.item<double>());
  TORCH_CHECK(std::isfinite(norm), "the gradient norm is ", norm,
              " (a NaN or Inf gradient); the step is refused rather than writing NaN into the weights");
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    at::NoGradGuard guard;
    for (auto& g : grads) g.mul_(scale);
  }
  return norm;
}

void seed_torch(uint64_t seed) { at::manual_seed(seed); }

}  // namespace prefopt::train
