// Checks and conversions of list inputs; see list_checks.h.
#include "list_checks.h"
#include "score_checks.h"

#include <limits>
#include <sstream>
#include <string>

#include <ATen/ATen.h>

namespace prefopt::detail {

void check_list_scores(const at::Tensor& scores, std::string_view name) {
  TORCH_CHECK(scores.defined(), name, " must be a tensor of shape [B, K], got an undefined tensor");
  TORCH_CHECK(scores.dim() == 2, name, " must have shape [B, K], got ", scores.sizes());
  TORCH_CHECK(scores.size(0) >= 1 && scores.size(1) >= 1, name,
              " must hold at least one list of at least one response, got shape ", scores.sizes());
  TORCH_CHECK(at::isFloatingType(scores.scalar_type()), name,
              " must be floating (float32, bfloat16, float16 or float64), got ", scores.scalar_type());
}

void check_same_list(const at::Tensor& t, std::string_view name, const at::Tensor& anchor,
                     std::string_view anchor_name) {
  TORCH_CHECK(t.defined(), name, " must be a tensor of shape ", anchor.sizes(), " matching ", anchor_name,
              ", got an undefined tensor");
  TORCH_CHECK(t.sizes() == anchor.sizes(), name, " must have shape ", anchor.sizes(), " matching ", anchor_name,
              ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == anchor.scalar_type(), name, " must have the dtype of ", anchor_name, " (",
              anchor.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == anchor.device(), name, " must be on the device of ", anchor_name, " (",
              anchor.device(), "), got ", t.device());
}

namespace {

void check_shape_device(const at::Tensor& t, std::string_view name, const at::Tensor& anchor,
                        std::string_view anchor_name) {
  TORCH_CHECK(t.sizes() == anchor.sizes(), name, " must have shape ", anchor.sizes(), " matching ", anchor_name,
              ", got ", t.sizes());
  TORCH_CHECK(t.device() == anchor.device(), name, " must be on the device of ", anchor_name, " (",
              anchor.device(), "), got ", t.device());
}

}  // namespace

at::Tensor list_mask(const at::Tensor& mask, std::string_view name, const at::Tensor& anchor,
                     std::string_view anchor_name) {
  if (!mask.defined()) return at::ones(anchor.sizes(), anchor.options().dtype(at::kBool));
  check_shape_device(mask, name, anchor, anchor_name);
  TORCH_CHECK(!at::isComplexType(mask.scalar_type()), name, " must be bool, integer or floating, got ",
              mask.scalar_type());
  return mask.scalar_type() == at::kBool ? mask : mask.ne(0);
}

at::Tensor list_grades(const at::Tensor& labels, std::string_view name, const at::Tensor& anchor,
                       std::string_view anchor_name, const at::Tensor& mask, bool ranks, at::ScalarType acc) {
  TORCH_CHECK(labels.defined(), name, " must be a tensor of shape ", anchor.sizes(), " matching ", anchor_name,
              ", got an undefined tensor");
  check_shape_device(labels, name, anchor, anchor_name);
  TORCH_CHECK(labels.scalar_type() != at::kBool && !at::isComplexType(labels.scalar_type()), name,
              " must hold integer or floating grades or ranks, got ", labels.scalar_type());
  const at::Tensor zero = at::zeros({}, anchor.options().dtype(acc));
  at::Tensor g = at::where(mask, labels.detach().to(acc), zero);
  if (ranks) {
    // max over the valid ranks of each list (invalid entries are -inf for the max, then 0).
    const at::Tensor lowest = at::full({}, -std::numeric_limits<double>::infinity(), g.options());
    const at::Tensor max_rank = at::where(mask, g, lowest).amax(1, /*keepdim=*/true);
    g = at::where(mask, max_rank - g, zero);
  }
  return g;
}

void check_finite_where(const at::Tensor& t, const at::Tensor& mask, std::string_view name) {
  at::Tensor bad = t.isfinite().logical_not();
  while (bad.dim() > mask.dim()) bad = bad.any(-1);
  bad = bad.logical_and(mask);
  if (any_set(bad, std::string(name) +
                       " must be finite where the mask is set (pass check_finite=false to let NaN/Inf propagate instead)")) {
    const at::Tensor where = bad.nonzero()[0];
    std::ostringstream index;
    at::Tensor value = t;
    for (int64_t d = 0; d < where.size(0); ++d) {
      const int64_t i = where[d].item<int64_t>();
      index << (d == 0 ? "[" : ", ") << i;
      value = value[i];
    }
    index << "]";
    if (value.dim() > 0) {
      const at::Tensor row = value.reshape({-1});
      value = row[row.isfinite().logical_not().nonzero()[0][0]];
    }
    TORCH_CHECK(false, name, " must be finite where the mask is set, got ", value.item<double>(), " at ", index.str(),
                " (pass check_finite=false to let NaN/Inf propagate instead)");
  }
}

at::Tensor valid_counts(const at::Tensor& mask, at::ScalarType dtype) { return mask.sum(1).to(dtype); }

}  // namespace prefopt::detail
