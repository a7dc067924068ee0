// Schema, C++ wrapper and checks of prefopt::segment_sum (see segment_sum.h). The checks run in every backend, so
// all reject the same inputs with the same message.
#include "segment_sum.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace prefopt::ops {

at::Tensor segment_sum(const at::Tensor& values, const at::Tensor& cu_seqlens) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("prefopt::segment_sum", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(values, cu_seqlens);
}

namespace detail {

void check_segment_sum_inputs(const at::Tensor& values, const at::Tensor& cu_seqlens) {
  TORCH_CHECK(values.dim() == 1, "values must have shape [S] (one value per packed token), got ", values.sizes());
  TORCH_CHECK(at::isFloatingType(values.scalar_type()),
              "values must be a floating tensor (float32, bfloat16, float16 or float64), got ", values.scalar_type());
  TORCH_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.size(0) >= 1,
              "cu_seqlens must have shape [N + 1] (the sequences' start offsets, then S), got ", cu_seqlens.sizes());
  TORCH_CHECK(cu_seqlens.scalar_type() == at::kLong || cu_seqlens.scalar_type() == at::kInt,
              "cu_seqlens must be int64 or int32, got ", cu_seqlens.scalar_type());
  TORCH_CHECK(cu_seqlens.device() == values.device(), "cu_seqlens must be on the device of values (",
              values.device(), "), got ", cu_seqlens.device());
  if (cu_seqlens.is_meta()) return;
  const at::Tensor offsets = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
  const int64_t* o = offsets.const_data_ptr<int64_t>();
  const int64_t n = offsets.size(0) - 1;
  TORCH_CHECK(o[0] == 0, "cu_seqlens[0] must be 0, got ", o[0]);
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(o[i + 1] >= o[i], "cu_seqlens must be non-decreasing: cu_seqlens[", i + 1, "] = ", o[i + 1],
                " < cu_seqlens[", i, "] = ", o[i]);
  }
  TORCH_CHECK(o[n] == values.size(0), "cu_seqlens must end at S = ", values.size(0), " (the number of values), got ",
              o[n]);
}

}  // namespace detail

TORCH_LIBRARY_FRAGMENT(prefopt, m) { m.def("segment_sum(Tensor values, Tensor cu_seqlens) -> Tensor"); }

}  // namespace prefopt::ops
