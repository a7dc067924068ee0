// Exposes SPO's losses as operators: torch.ops.prefopt.degree_loss (per-example cross-entropy), .spo_loss (the
// combined loss and the per-example degree losses) and .pool_hidden_states. Composite over the C++ functions. The
// text augmentation SPO trains with is the data layer's (keyphrase_ops.cpp).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <prefopt/losses/degree.h>
#include "op_support.h"

namespace prefopt {
namespace {

using ops::view;

const ops::OpOptions<SPOLossOptions> kSPO;

at::Tensor degree_loss_op(const at::Tensor& logits, const at::Tensor& degrees, double label_smoothing,
                          bool check_inputs) {
  return functional::degree_loss(
             logits, degrees,
             DegreeLossOptions().label_smoothing(label_smoothing).check_inputs(check_inputs).reduction(torch::kNone))
      .losses;
}

std::tuple<at::Tensor, at::Tensor> spo_loss_op(const at::Tensor& align_loss, const at::Tensor& degree_logits,
                                               const at::Tensor& degrees, double degree_weight, double label_smoothing,
                                               bool check_inputs) {
  LossOutput align;
  align.loss = align_loss;
  const auto options = kSPO.read(degree_weight, label_smoothing).check_inputs(check_inputs);
  const LossOutput out = functional::spo_loss(align, degree_logits, degrees, options);
  return {out.loss, degree_loss_op(degree_logits, degrees, label_smoothing, /*check_inputs=*/false)};
}

at::Tensor pool_hidden_states_op(const at::Tensor& hidden_states, const std::optional<at::Tensor>& attention_mask,
                                 c10::string_view pooling) {
  return functional::pool_hidden_states(hidden_states, attention_mask.value_or(at::Tensor()),
                                        degree_pooling_from_string(view(pooling)));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "degree_loss(Tensor logits, Tensor degrees, *, float label_smoothing=0.0, bool check_inputs=True) -> Tensor");
  m.def(("spo_loss(Tensor align_loss, Tensor degree_logits, Tensor degrees, *, " + kSPO.schema() +
         ", bool check_inputs=True) -> (Tensor loss, Tensor degree_losses)")
            .c_str());
  m.def("pool_hidden_states(Tensor hidden_states, Tensor? attention_mask=None, *, str pooling=\"mean\") -> Tensor");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("degree_loss", &degree_loss_op);
  m.impl("spo_loss", &spo_loss_op);
  m.impl("pool_hidden_states", &pool_hidden_states_op);
}

}  // namespace prefopt
