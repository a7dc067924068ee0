// Applies a Reduction to per-example losses. Internal to the library.
#pragma once

#include <ATen/core/Tensor.h>

#include <prefopt/losses/loss_output.h>

namespace prefopt::detail {

at::Tensor reduce(const at::Tensor& losses, const Reduction& reduction);

}  // namespace prefopt::detail
