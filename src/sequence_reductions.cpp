// LD-DPO's length-desensitised sequence log-probs and the mean token NLL, from [B, T] per-token log-probs
// and masks (see sequence_reductions.h).
#include <prefopt/sequence_reductions.h>

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

namespace prefopt {
namespace {

void check_token_pair(const at::Tensor& logps, const char* logps_name, const at::Tensor& mask, const char* mask_name) {
  TORCH_CHECK(logps.defined() && logps.dim() == 2 && at::isFloatingType(logps.scalar_type()), logps_name,
              " must be a floating tensor of shape [B, T], got ",
              logps.defined() ? logps.sizes() : at::IntArrayRef{}, logps.defined() ? "" : " (undefined)");
  TORCH_CHECK(mask.defined() && mask.sizes() == logps.sizes(), mask_name, " must have the shape of ", logps_name, " ",
              logps.sizes(), ", got ", mask.defined() ? mask.sizes() : at::IntArrayRef{});
  TORCH_CHECK(mask.scalar_type() == at::kBool, mask_name, " must be bool, got ", mask.scalar_type());
  TORCH_CHECK(mask.device() == logps.device(), mask_name, " must be on the device of ", logps_name, " (",
              logps.device(), "), got ", mask.device());
}

// Masked-out positions are selected away, not multiplied by 0, so whatever they hold (even -inf) never reaches
// the sums; the sums accumulate in float32 for half inputs.
at::Tensor select(const at::Tensor& logps, const at::Tensor& keep) {
  return at::where(keep, logps, at::zeros({}, logps.options())).to(at::toOpMathType(logps.scalar_type()));
}

// Sum of the masked values, the first `front` scored tokens at weight 1 and the rest at alpha.
at::Tensor front_weighted_sum(const at::Tensor& logps, const at::Tensor& mask, const at::Tensor& front, double alpha) {
  const at::Tensor rank = mask.to(at::kLong).cumsum(1);  // 1-based index among scored tokens
  const at::Tensor in_front = rank.le(front.unsqueeze(1)) & mask;
  const at::Tensor in_rear = rank.gt(front.unsqueeze(1)) & mask;
  return (select(logps, in_front).sum(1) + alpha * select(logps, in_rear).sum(1)).to(logps.scalar_type());
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> ld_dpo_logps(const torch::Tensor& chosen_token_logps,
                                                     const torch::Tensor& chosen_mask,
                                                     const torch::Tensor& rejected_token_logps,
                                                     const torch::Tensor& rejected_mask, double alpha) {
  check_token_pair(chosen_token_logps, "chosen_token_logps", chosen_mask, "chosen_mask");
  check_token_pair(rejected_token_logps, "rejected_token_logps", rejected_mask, "rejected_mask");
  TORCH_CHECK(rejected_token_logps.size(0) == chosen_token_logps.size(0),
              "rejected_token_logps must have the batch size of chosen_token_logps (", chosen_token_logps.size(0),
              "), got ", rejected_token_logps.size(0));
  TORCH_CHECK(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0, "alpha must be in [0, 1], got ", alpha);
  const at::Tensor shared = at::minimum(chosen_mask.sum(1), rejected_mask.sum(1));
  return {front_weighted_sum(chosen_token_logps, chosen_mask, shared, alpha),
          front_weighted_sum(rejected_token_logps, rejected_mask, shared, alpha)};
}

torch::Tensor mean_token_nll(const torch::Tensor& token_logps, const torch::Tensor& mask) {
  check_token_pair(token_logps, "token_logps", mask, "mask");
  const at::Tensor total = select(token_logps, mask).sum();
  return (-total / mask.sum().clamp_min(1).to(total.scalar_type())).to(token_logps.scalar_type());
}

}  // namespace prefopt
