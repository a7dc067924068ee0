// Label recipes (joint / prompt-inclusive for DOVE, completion-only) and per-step means (TPO) on [B, T]
// integer and float tensors. The vocabulary is only touched by sequence_logps, through the token_logps kernel.
#include <prefopt/scoring_joint.h>

#include <ATen/ATen.h>

namespace prefopt {
namespace {

at::Tensor attended(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  if (!attention_mask.defined()) return at::ones(input_ids.sizes(), input_ids.options().dtype(at::kBool));
  TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(), "attention_mask must have shape ", input_ids.sizes(),
              " matching input_ids, got ", attention_mask.sizes());
  TORCH_CHECK(attention_mask.device() == input_ids.device(), "attention_mask must be on the device of input_ids (",
              input_ids.device(), "), got ", attention_mask.device());
  return attention_mask.scalar_type() == at::kBool ? attention_mask : attention_mask.ne(0);
}

void check_ids(const at::Tensor& input_ids) {
  TORCH_CHECK(input_ids.defined() && input_ids.dim() == 2, "input_ids must have shape [B, T], got ",
              input_ids.defined() ? input_ids.sizes() : at::IntArrayRef{});
  TORCH_CHECK(input_ids.size(1) >= 2, "input_ids must hold at least two positions per row (the first is never "
              "scored), got shape ", input_ids.sizes());
  TORCH_CHECK(input_ids.scalar_type() == at::kLong, "input_ids must be int64, got ", input_ids.scalar_type());
}

}  // namespace

torch::Tensor joint_labels(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, int64_t ignore_index) {
  check_ids(input_ids);
  const at::Tensor mask = attended(input_ids, attention_mask);
  const int64_t t = input_ids.size(1);
  const at::Tensor scored = mask.slice(1, 1, t).logical_and(mask.slice(1, 0, t - 1));
  return at::where(scored, input_ids.slice(1, 1, t), at::full({}, ignore_index, input_ids.options()));
}

torch::Tensor completion_labels(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                const torch::Tensor& prompt_lengths, int64_t ignore_index) {
  const at::Tensor labels = joint_labels(input_ids, attention_mask, ignore_index);
  TORCH_CHECK(prompt_lengths.defined() && prompt_lengths.dim() == 1 && prompt_lengths.size(0) == input_ids.size(0),
              "prompt_lengths must have shape [B] matching input_ids [", input_ids.size(0), ", ", input_ids.size(1),
              "], got ", prompt_lengths.defined() ? prompt_lengths.sizes() : at::IntArrayRef{});
  TORCH_CHECK(!at::isFloatingType(prompt_lengths.scalar_type()) && prompt_lengths.scalar_type() != at::kBool,
              "prompt_lengths must be integer, got ", prompt_lengths.scalar_type());
  TORCH_CHECK(prompt_lengths.device() == input_ids.device(), "prompt_lengths must be on the device of input_ids (",
              input_ids.device(), "), got ", prompt_lengths.device());
  // Label position t predicts token t + 1, which is a prompt token when t + 1 < prompt_length.
  const at::Tensor predicted = at::arange(1, input_ids.size(1), input_ids.options()).unsqueeze(0);
  const at::Tensor in_prompt = predicted < prompt_lengths.to(at::kLong).unsqueeze(1);
  return at::where(in_prompt, at::full({}, ignore_index, labels.options()), labels);
}

SequenceLogps joint_sequence_logps(const torch::Tensor& logits, const torch::Tensor& input_ids,
                                   const torch::Tensor& attention_mask, const SequenceLogpsOptions& options) {
  TORCH_CHECK(logits.defined() && logits.dim() == 3, "logits must have shape [B, T, V], got ",
              logits.defined() ? logits.sizes() : at::IntArrayRef{});
  check_ids(input_ids);
  TORCH_CHECK(logits.size(0) == input_ids.size(0) && logits.size(1) == input_ids.size(1),
              "input_ids must have shape [B, T] matching logits [", logits.size(0), ", ", logits.size(1), ", ",
              logits.size(2), "], got ", input_ids.sizes());
  const at::Tensor labels = joint_labels(input_ids, attention_mask, options.ignore_index());
  return sequence_logps(logits.slice(1, 0, logits.size(1) - 1), labels, options);
}

StepMeans step_means(const torch::Tensor& values, const torch::Tensor& step_ids, int64_t num_steps,
                     bool check_inputs) {
  TORCH_CHECK(values.defined() && (values.dim() == 2 || values.dim() == 3), "values must have shape [B, T] or [B, T, E], got ",
              values.defined() ? values.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(values.scalar_type()), "values must be floating, got ", values.scalar_type());
  TORCH_CHECK(step_ids.defined() && step_ids.dim() == 2 && step_ids.size(0) == values.size(0) &&
                  step_ids.size(1) == values.size(1),
              "step_ids must have shape [B, T] matching values ", values.sizes(), ", got ",
              step_ids.defined() ? step_ids.sizes() : at::IntArrayRef{});
  TORCH_CHECK(!at::isFloatingType(step_ids.scalar_type()) && step_ids.scalar_type() != at::kBool,
              "step_ids must be integer, got ", step_ids.scalar_type());
  TORCH_CHECK(step_ids.device() == values.device(), "step_ids must be on the device of values (", values.device(),
              "), got ", step_ids.device());
  TORCH_CHECK(num_steps >= 1, "num_steps must be >= 1, got ", num_steps);
  const at::Tensor ids = step_ids.to(at::kLong);
  if (check_inputs && ids.numel() > 0) {
    const int64_t largest = ids.max().item<int64_t>();
    TORCH_CHECK(largest < num_steps, "step_ids must be < num_steps (", num_steps, "), got ", largest);
  }
  // one_hot[b, t, s] = 1 when position t belongs to step s; sums and counts are contractions over t.
  const at::Tensor one_hot =
      ids.unsqueeze(2).eq(at::arange(num_steps, ids.options()).view({1, 1, num_steps})).to(values.scalar_type());
  const at::Tensor counts = one_hot.sum(1);  // [B, S]
  StepMeans out;
  out.mask = counts > 0;
  const at::Tensor divisor = counts.clamp_min(1);
  if (values.dim() == 2) {
    out.means = (one_hot * values.unsqueeze(2)).sum(1) / divisor;
  } else {
    out.means = at::bmm(one_hot.transpose(1, 2), values) / divisor.unsqueeze(2);
  }
  return out;
}

}  // namespace prefopt
