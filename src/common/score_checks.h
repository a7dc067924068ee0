// Input checks shared by the losses: shapes, dtypes, devices and finiteness of score tensors, with
// messages that name the argument, what was expected and what came. Internal to the library.
#pragma once

#include <string_view>

#include <ATen/core/Tensor.h>

namespace prefopt::detail {

// `scores` must be a defined 1-D floating tensor with at least one element.
void check_batch_scores(const at::Tensor& scores, std::string_view name);

// `scores` must match `anchor` (named anchor_name) in shape, dtype and device.
void check_same_batch(const at::Tensor& scores, std::string_view name, const at::Tensor& anchor,
                      std::string_view anchor_name);

// Whether any element of the boolean tensor `bad` is set, for a value check that then raises its precise error.
// In eager mode this reads the answer on the host. While torch.compile, make_fx or torch.export trace the op (fake
// or functional tensors, which carry the Python dispatch key) a host read is a data-dependent guard that breaks the
// graph; there it records an in-graph assert instead (at::_assert_async, raising `traced_message` when the compiled
// code runs on bad values) and returns false, so the default checks compile with fullgraph=True.
bool any_set(const at::Tensor& bad, std::string_view traced_message);

// Raises when `scores` holds NaN or Inf, naming the first bad index (in eager mode; see any_set).
void check_finite(const at::Tensor& scores, std::string_view name);

// A scalar option that must be finite and lie in [low, high] (or (low, high] when low_open).
void check_option_range(double value, std::string_view name, double low, double high, bool low_open);

}  // namespace prefopt::detail
