// KTO and apo_zero_unpaired (LOSSES.md section 2): per-example losses of labelled single completions against a
// detached KL baseline, their rewards and TRL's metrics. The arithmetic runs on [B] tensors in float32 (float64
// for float64 inputs); the desirable/undesirable split is a mask, never a gather, except for the two reward
// subsets that the functional form hands back.
#include <prefopt/losses/unpaired.h>

#include <cmath>
#include <limits>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include "reduction.h"
#include "../common/score_checks.h"
#include "unpaired_terms.h"

namespace prefopt {
namespace {

struct KTOTypeName {
  KTOLossType type;
  const char* name;
};

constexpr KTOTypeName kKTOTypeNames[] = {
    {KTOLossType::KTO, "kto"},
    {KTOLossType::APOZeroUnpaired, "apo_zero_unpaired"},
};

}  // namespace

std::string to_string(KTOLossType type) {
  for (const auto& entry : kKTOTypeNames) {
    if (entry.type == type) return entry.name;
  }
  TORCH_CHECK(false, "unknown KTOLossType ", static_cast<int>(type));
}

KTOLossType kto_loss_type_from_string(std::string_view name) {
  std::ostringstream known;
  for (const auto& entry : kKTOTypeNames) {
    if (name == entry.name) return entry.type;
    known << (&entry == kKTOTypeNames ? "" : ", ") << entry.name;
  }
  TORCH_CHECK(false, "loss_type must be one of: ", known.str(), "; got '", name, "'");
}

namespace detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_options(const KTOLossOptions& options) {
  check_option_range(options.beta(), "beta", 0.0, kInf, /*low_open=*/true);
  check_option_range(options.desirable_weight(), "desirable_weight", 0.0, kInf, /*low_open=*/false);
  check_option_range(options.undesirable_weight(), "undesirable_weight", 0.0, kInf, /*low_open=*/false);
}

void check_inputs(const at::Tensor& policy, const at::Tensor& ref, const at::Tensor& labels,
                  const KTOLossOptions& options, const KTOLossInputs& inputs) {
  check_batch_scores(policy, "policy_logps");
  check_same_batch(ref, "ref_logps", policy, "policy_logps");
  TORCH_CHECK(labels.defined(),
              "labels must be a bool tensor of shape [B] (true = desirable), got an undefined tensor");
  TORCH_CHECK(labels.sizes() == policy.sizes(), "labels must have shape [B] matching policy_logps ", policy.sizes(),
              ", got ", labels.sizes());
  TORCH_CHECK(labels.scalar_type() == at::kBool, "labels must be a bool tensor (true = desirable), got ",
              labels.scalar_type());
  TORCH_CHECK(labels.device() == policy.device(), "labels must be on the device of policy_logps (", policy.device(),
              "), got ", labels.device());

  const bool has_logps = inputs.policy_kl_logps().defined() || inputs.ref_kl_logps().defined();
  const bool has_kl = inputs.kl().defined();
  if (options.loss_type() == KTOLossType::APOZeroUnpaired) {
    TORCH_CHECK(!has_logps && !has_kl,
                "loss_type apo_zero_unpaired uses no KL baseline: do not pass policy_kl_logps, ref_kl_logps or kl");
  } else {
    TORCH_CHECK(has_logps || has_kl,
                "loss_type kto needs its KL baseline z0: pass policy_kl_logps and ref_kl_logps (log-probs of "
                "mismatched prompt/completion pairs, [M]) or a precomputed kl (0-dim)");
    TORCH_CHECK(!(has_logps && has_kl), "pass either policy_kl_logps and ref_kl_logps or kl, not both");
  }
  if (has_logps) {
    TORCH_CHECK(inputs.policy_kl_logps().defined(),
                "policy_kl_logps is required with ref_kl_logps (the policy's log-probs of the mismatched pairs)");
    TORCH_CHECK(inputs.ref_kl_logps().defined(),
                "ref_kl_logps is required with policy_kl_logps (the reference's log-probs of the mismatched pairs)");
    const at::Tensor& pk = inputs.policy_kl_logps();
    TORCH_CHECK(pk.dim() == 1 && pk.size(0) >= 1, "policy_kl_logps must have shape [M] with M >= 1, got ", pk.sizes());
    TORCH_CHECK(pk.scalar_type() == policy.scalar_type(), "policy_kl_logps must have the dtype of policy_logps (",
                policy.scalar_type(), "), got ", pk.scalar_type());
    TORCH_CHECK(pk.device() == policy.device(), "policy_kl_logps must be on the device of policy_logps (",
                policy.device(), "), got ", pk.device());
    check_same_batch(inputs.ref_kl_logps(), "ref_kl_logps", pk, "policy_kl_logps");
  }
  if (has_kl) {
    TORCH_CHECK(inputs.kl().dim() == 0 && at::isFloatingType(inputs.kl().scalar_type()),
                "kl must be a 0-dim floating tensor, got shape ", inputs.kl().sizes(), " and dtype ",
                inputs.kl().scalar_type());
  }
  if (options.check_finite()) {
    check_finite(policy, "policy_logps");
    check_finite(ref, "ref_logps");
    if (has_logps) {
      check_finite(inputs.policy_kl_logps(), "policy_kl_logps");
      check_finite(inputs.ref_kl_logps(), "ref_kl_logps");
    }
    if (has_kl) check_finite(inputs.kl().reshape({1}), "kl");
  }
}

}  // namespace

LossOutput kto_loss_unsplit(const at::Tensor& policy_logps, const at::Tensor& ref_logps, const at::Tensor& labels,
                            const KTOLossOptions& options, const KTOLossInputs& inputs) {
  check_options(options);
  check_inputs(policy_logps, ref_logps, labels, options, inputs);
  const auto in_dtype = policy_logps.scalar_type();
  const auto acc = at::toOpMathType(in_dtype);
  const double beta = options.beta();

  const at::Tensor p = policy_logps.to(acc);
  const at::Tensor h = p - ref_logps.to(acc);
  const at::Tensor desirable = labels;
  at::Tensor z0 = at::zeros({}, h.options());
  if (options.loss_type() == KTOLossType::KTO) {
    const at::Tensor raw = inputs.kl().defined()
                               ? inputs.kl().to(acc)
                               : (inputs.policy_kl_logps().to(acc) - inputs.ref_kl_logps().to(acc)).mean();
    z0 = raw.detach().clamp_min(0.0);
  }

  at::Tensor chosen_losses, rejected_losses;
  if (options.loss_type() == KTOLossType::KTO) {
    chosen_losses = 1.0 - at::sigmoid(beta * (h - z0));
    rejected_losses = 1.0 - at::sigmoid(beta * (z0 - h));
  } else {
    chosen_losses = 1.0 - at::sigmoid(beta * h);
    rejected_losses = at::sigmoid(beta * h);
  }
  const at::Tensor losses = at::where(desirable, options.desirable_weight() * chosen_losses,
                                      options.undesirable_weight() * rejected_losses);

  LossOutput out;
  out.losses = losses.to(in_dtype);
  out.loss = reduce(out.losses, options.reduction());
  const at::Tensor rewards = (beta * h).detach();
  out.rewards = rewards.to(in_dtype);

  // Sums over each side through the mask (NaN in one side's entries stays on that side), then the means TRL
  // logs, 0 for an empty side.
  const at::Tensor undesirable = desirable.logical_not();
  const at::Tensor zero = at::zeros({}, rewards.options());
  const at::Tensor n_c = desirable.to(acc).sum();
  const at::Tensor n_r = undesirable.to(acc).sum();
  const at::Tensor rc_sum = at::where(desirable, rewards, zero).sum();
  const at::Tensor rr_sum = at::where(undesirable, rewards, zero).sum();
  const at::Tensor pc_sum = at::where(desirable, p.detach(), zero).sum();
  const at::Tensor pr_sum = at::where(undesirable, p.detach(), zero).sum();
  const at::Tensor rc_mean = rc_sum / n_c.clamp_min(1.0);
  const at::Tensor rr_mean = rr_sum / n_r.clamp_min(1.0);
  auto f32 = [](const at::Tensor& t) { return t.detach().to(at::kFloat); };
  out.metrics["kl"] = f32(z0);
  out.metrics["count/chosen"] = f32(n_c);
  out.metrics["count/rejected"] = f32(n_r);
  out.metrics["rewards/chosen_sum"] = f32(rc_sum);
  out.metrics["rewards/rejected_sum"] = f32(rr_sum);
  out.metrics["logps/chosen_sum"] = f32(pc_sum);
  out.metrics["logps/rejected_sum"] = f32(pr_sum);
  out.metrics["rewards/chosen"] = f32(rc_mean);
  out.metrics["rewards/rejected"] = f32(rr_mean);
  out.metrics["rewards/margins"] = f32(rc_mean - rr_mean);
  out.metrics["logps/chosen"] = f32(pc_sum / n_c.clamp_min(1.0));
  out.metrics["logps/rejected"] = f32(pr_sum / n_r.clamp_min(1.0));
  return out;
}

}  // namespace detail

namespace functional {

LossOutput kto_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                    const KTOLossOptions& options, const KTOLossInputs& inputs) {
  LossOutput out = detail::kto_loss_unsplit(policy_logps, ref_logps, labels, options, inputs);
  out.chosen_rewards = out.rewards.masked_select(labels);
  out.rejected_rewards = out.rewards.masked_select(labels.logical_not());
  return out;
}

}  // namespace functional

KTOLossImpl::KTOLossImpl(KTOLossOptions options_) : options(std::move(options_)) { reset(); }
void KTOLossImpl::reset() {}
void KTOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::KTOLoss(loss_type=" << to_string(options.loss_type()) << ", beta=" << options.beta()
         << ", desirable_weight=" << options.desirable_weight()
         << ", undesirable_weight=" << options.undesirable_weight() << ")";
}
LossOutput KTOLossImpl::forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                                const torch::Tensor& labels, const KTOLossInputs& inputs) {
  return functional::kto_loss(policy_logps, ref_logps, labels, options, inputs);
}

}  // namespace prefopt
