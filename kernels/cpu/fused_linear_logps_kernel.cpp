// CPU registration of fused_linear_logps: the chunked implementation of fused_linear_logps.cpp, whose matmuls
// are ATen's (oneDNN/MKL) and whose per-chunk log-softmax work is the vectorised token_logps CPU kernel. No
// [N, V] tensor exists; see fused_linear_logps.cpp for the chunking.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../fused_linear_logps.h"

namespace prefopt::ops {

TORCH_LIBRARY_IMPL(prefopt, CPU, m) {
  m.impl("fused_linear_logps", &detail::fused_linear_logps_forward_impl);
  m.impl("_fused_linear_logps_backward", &detail::fused_linear_logps_backward_impl);
}

}  // namespace prefopt::ops
