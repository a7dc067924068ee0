// A finite-difference gradient check for float64 functions of tensors (LibTorch's C++ API has no
// gradcheck): autograd's vector-Jacobian product against central differences of a random projection.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

namespace prefopt::testing {

// f maps the inputs to one tensor. Every input must be float64 and require grad.
inline void expect_gradcheck(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
                             std::vector<torch::Tensor> inputs, double eps = 1e-6, double atol = 1e-6,
                             double rtol = 1e-4) {
  torch::manual_seed(1234);
  const torch::Tensor out = f(inputs);
  const torch::Tensor weights = torch::randn(out.sizes(), out.options().requires_grad(false));
  const auto analytic = torch::autograd::grad({(out * weights).sum()}, inputs, {}, /*retain_graph=*/false,
                                              /*create_graph=*/false, /*allow_unused=*/true);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    torch::Tensor flat = inputs[i].view({-1});
    const torch::Tensor grad = analytic[i].defined() ? analytic[i].reshape({-1}) : torch::zeros_like(flat);
    for (int64_t k = 0; k < flat.numel(); ++k) {
      const double saved = flat[k].item<double>();
      flat[k] = saved + eps;
      const double plus = (f(inputs) * weights).sum().item<double>();
      flat[k] = saved - eps;
      const double minus = (f(inputs) * weights).sum().item<double>();
      flat[k] = saved;
      const double numeric = (plus - minus) / (2 * eps);
      const double got = grad[k].item<double>();
      EXPECT_NEAR(got, numeric, atol + rtol * std::abs(numeric)) << "input " << i << " element " << k;
    }
  }
}

}  // namespace prefopt::testing
