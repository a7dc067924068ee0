// Checks and conversions of the [B, K] list inputs (scores, labels, masks) that the listwise losses and the
// ranking metrics take, with messages that name the argument, what was expected and what came. Internal.
#pragma once

#include <string_view>

#include <ATen/core/Tensor.h>

namespace prefopt::detail {

// `scores` must be a defined 2-D floating tensor [B, K] with B >= 1 and K >= 1.
void check_list_scores(const at::Tensor& scores, std::string_view name);

// `t` must match `anchor` (named anchor_name) in shape, dtype and device.
void check_same_list(const at::Tensor& t, std::string_view name, const at::Tensor& anchor,
                     std::string_view anchor_name);

// The [B, K] bool validity mask: all true when `mask` is undefined; otherwise it must have the anchor's
// shape and device and a bool, integer or floating dtype (nonzero = valid).
at::Tensor list_mask(const at::Tensor& mask, std::string_view name, const at::Tensor& anchor,
                     std::string_view anchor_name);

// Graded labels (higher is better) in dtype `acc`, 0 at invalid entries. `labels` must have the anchor's
// shape and device and a real (integer or floating, not bool) dtype. With `ranks`, the labels are ranks
// (lower is better) and become grades max_valid_rank - rank (>= 0; the best rank gets the largest grade).
at::Tensor list_grades(const at::Tensor& labels, std::string_view name, const at::Tensor& anchor,
                       std::string_view anchor_name, const at::Tensor& mask, bool ranks, at::ScalarType acc);

// Raises when an entry of `t` under `mask` holds NaN or Inf, naming the first such index. `t` may have more
// dimensions than `mask` (which covers its leading ones). One reduction and a host sync.
void check_finite_where(const at::Tensor& t, const at::Tensor& mask, std::string_view name);

// [B] number of valid entries per list, in `dtype`.
at::Tensor valid_counts(const at::Tensor& mask, at::ScalarType dtype);

}  // namespace prefopt::detail
