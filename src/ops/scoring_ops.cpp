// Exposes the scoring API as operators (torch.ops.prefopt.sequence_logps) so Python reaches the same code
// as C++. Composite: autograd flows through the token_logps operator it calls.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/scoring.h>

namespace prefopt {
namespace {

std::tuple<at::Tensor, at::Tensor> sequence_logps_op(const at::Tensor& logits, const at::Tensor& labels,
                                                     int64_t ignore_index, bool average, double temperature) {
  auto out = sequence_logps(
      logits, labels, SequenceLogpsOptions().ignore_index(ignore_index).average(average).temperature(temperature));
  return {out.logps, out.token_logps};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "sequence_logps(Tensor logits, Tensor labels, int ignore_index=-100, bool average=False, "
      "float temperature=1.0) -> (Tensor logps, Tensor token_logps)");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) { m.impl("sequence_logps", &sequence_logps_op); }

}  // namespace prefopt
