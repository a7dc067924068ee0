// CPU kernel of segment_sum: at::parallel_for over the segments, each summed in order in the accumulation dtype
// widened once more (fp32 values add up in double), so the result does not depend on the thread count. Reads
// every value once; allocates only the [N] output.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../segment_sum.h"

namespace prefopt::ops {
namespace {

at::Tensor segment_sum_cpu(const at::Tensor& values_in, const at::Tensor& cu_seqlens) {
  detail::check_segment_sum_inputs(values_in, cu_seqlens);
  const auto acc = at::toOpMathType(values_in.scalar_type());
  const int64_t n = cu_seqlens.size(0) - 1;
  at::Tensor out = at::empty({n}, values_in.options().dtype(acc));
  if (n == 0) return out;
  const at::Tensor values = values_in.contiguous();
  const at::Tensor offsets = cu_seqlens.to(at::kLong).contiguous();
  const int64_t* o = offsets.const_data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, values.scalar_type(), "segment_sum_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* v = values.const_data_ptr<scalar_t>();
    acc_t* r = out.mutable_data_ptr<acc_t>();
    at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        double sum = 0.0;
        for (int64_t t = o[i]; t < o[i + 1]; ++t) sum += static_cast<double>(v[t]);
        r[i] = static_cast<acc_t>(sum);
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(prefopt, CPU, m) { m.impl("segment_sum", &segment_sum_cpu); }

}  // namespace prefopt::ops
