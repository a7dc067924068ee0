// The DPO family's per-pair losses, rewards and TRL metrics from summed sequence log-probs (LOSSES.md
// section 1). The arithmetic runs on [B] tensors in float32 (float64 for float64 inputs): never on tokens.
#include <prefopt/losses/pairwise.h>

#include <cmath>
#include <limits>
#include <string>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include "reduction.h"
#include "../common/score_checks.h"

namespace prefopt {
namespace {

struct LossTypeName {
  DPOLossType type;
  const char* name;
};

constexpr LossTypeName kLossTypeNames[] = {
    {DPOLossType::Sigmoid, "sigmoid"},       {DPOLossType::Hinge, "hinge"},
    {DPOLossType::IPO, "ipo"},               {DPOLossType::ExoPair, "exo_pair"},
    {DPOLossType::NCAPair, "nca_pair"},      {DPOLossType::Robust, "robust"},
    {DPOLossType::BCOPair, "bco_pair"},      {DPOLossType::SPPOHard, "sppo_hard"},
    {DPOLossType::AOT, "aot"},               {DPOLossType::AOTUnpaired, "aot_unpaired"},
    {DPOLossType::APOZero, "apo_zero"},      {DPOLossType::APODown, "apo_down"},
    {DPOLossType::DiscoPOP, "discopop"},     {DPOLossType::SigmoidNorm, "sigmoid_norm"},
    {DPOLossType::SFT, "sft"},
};

struct DivergenceName {
  FDivergence divergence;
  const char* name;
};

constexpr DivergenceName kDivergenceNames[] = {
    {FDivergence::ReverseKL, "reverse_kl"},
    {FDivergence::ForwardKL, "forward_kl"},
    {FDivergence::JSDivergence, "js_divergence"},
    {FDivergence::AlphaDivergence, "alpha_divergence"},
};

template <typename Table>
std::string known_names(const Table& table) {
  std::ostringstream out;
  bool first = true;
  for (const auto& entry : table) {
    out << (first ? "" : ", ") << entry.name;
    first = false;
  }
  return out.str();
}

}  // namespace

std::string to_string(DPOLossType type) {
  for (const auto& entry : kLossTypeNames) {
    if (entry.type == type) return entry.name;
  }
  TORCH_CHECK(false, "unknown DPOLossType ", static_cast<int>(type));
}

std::string to_string(FDivergence divergence) {
  for (const auto& entry : kDivergenceNames) {
    if (entry.divergence == divergence) return entry.name;
  }
  TORCH_CHECK(false, "unknown FDivergence ", static_cast<int>(divergence));
}

DPOLossType dpo_loss_type_from_string(std::string_view name) {
  for (const auto& entry : kLossTypeNames) {
    if (name == entry.name) return entry.type;
  }
  TORCH_CHECK(false, "loss_type must be one of: ", known_names(kLossTypeNames), "; got '", name, "'");
}

FDivergence f_divergence_from_string(std::string_view name) {
  for (const auto& entry : kDivergenceNames) {
    if (name == entry.name) return entry.divergence;
  }
  TORCH_CHECK(false, "f_divergence must be one of: ", known_names(kDivergenceNames), "; got '", name, "'");
}

namespace functional {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<DPOLossType> selected_types(const DPOLossOptions& options) {
  return options.loss_types().empty() ? std::vector<DPOLossType>{options.loss_type()} : options.loss_types();
}

bool uses(const std::vector<DPOLossType>& types, std::initializer_list<DPOLossType> any) {
  for (auto t : types) {
    for (auto a : any) {
      if (t == a) return true;
    }
  }
  return false;
}

bool uses_label_smoothing(DPOLossType t) {
  return t == DPOLossType::Sigmoid || t == DPOLossType::Robust || t == DPOLossType::ExoPair ||
         t == DPOLossType::AOT || t == DPOLossType::AOTUnpaired;
}

void check_options(const DPOLossOptions& options, const std::vector<DPOLossType>& types) {
  detail::check_option_range(options.beta(), "beta", 0.0, kInf, /*low_open=*/true);
  TORCH_CHECK(options.loss_weights().empty() || options.loss_weights().size() == types.size(),
              "loss_weights must have one weight per loss type (", types.size(), "), got ",
              options.loss_weights().size());
  for (size_t k = 0; k < options.loss_weights().size(); ++k) {
    TORCH_CHECK(std::isfinite(options.loss_weights()[k]), "loss_weights[", k, "] must be finite, got ",
                options.loss_weights()[k]);
  }
  const double eps = options.label_smoothing();
  bool smoothing_used = false;
  for (auto t : types) {
    if (!uses_label_smoothing(t)) continue;
    smoothing_used = true;
    const std::string name = "label_smoothing (for loss_type " + to_string(t) + ")";
    if (t == DPOLossType::ExoPair) {
      TORCH_CHECK(std::isfinite(eps) && eps > 0.0 && eps < 1.0, name, " must be in (0, 1), got ", eps);
    } else if (t == DPOLossType::Robust) {
      TORCH_CHECK(std::isfinite(eps) && eps >= 0.0 && eps < 0.5, name, " must be in [0, 0.5), got ", eps);
    } else {
      detail::check_option_range(eps, name, 0.0, 0.5, /*low_open=*/false);
    }
  }
  TORCH_CHECK(smoothing_used || eps == 0.0, "label_smoothing must be 0 for loss_type ",
              to_string(types.front()), " (only sigmoid, robust, exo_pair, aot and aot_unpaired use it), got ", eps);
  if (options.f_divergence() == FDivergence::AlphaDivergence) {
    TORCH_CHECK(std::isfinite(options.alpha_divergence_coef()), "alpha_divergence_coef must be finite, got ",
                options.alpha_divergence_coef());
  }
  if (uses(types, {DPOLossType::DiscoPOP})) {
    detail::check_option_range(options.discopop_tau(), "discopop_tau", 0.0, kInf,
                               /*low_open=*/true);
  }
  TORCH_CHECK(std::isfinite(options.rpo_alpha()) && options.rpo_alpha() >= 0.0,
              "rpo_alpha must be finite and >= 0, got ", options.rpo_alpha());
}

void check_inputs(const at::Tensor& pc, const at::Tensor& pr, const at::Tensor& rc, const at::Tensor& rr,
                  const DPOLossOptions& options, const DPOLossInputs& inputs, const std::vector<DPOLossType>& types) {
  detail::check_batch_scores(pc, "policy_chosen_logps");
  detail::check_same_batch(pr, "policy_rejected_logps", pc, "policy_chosen_logps");
  if (!options.reference_free()) {
    detail::check_same_batch(rc, "ref_chosen_logps", pc, "policy_chosen_logps");
    detail::check_same_batch(rr, "ref_rejected_logps", pc, "policy_chosen_logps");
  }
  const bool needs_lengths = uses(types, {DPOLossType::IPO, DPOLossType::SigmoidNorm});
  if (needs_lengths) {
    for (const auto& [t, name] : {std::pair{inputs.chosen_lengths(), "chosen_lengths"},
                                   std::pair{inputs.rejected_lengths(), "rejected_lengths"}}) {
      TORCH_CHECK(t.defined(), name, " is required by loss_type ipo and sigmoid_norm (completion token counts, [B])");
      TORCH_CHECK(t.sizes() == pc.sizes(), name, " must have shape [B] matching policy_chosen_logps ", pc.sizes(),
                  ", got ", t.sizes());
      TORCH_CHECK(t.device() == pc.device(), name, " must be on the device of policy_chosen_logps (", pc.device(),
                  "), got ", t.device());
    }
  }
  const bool needs_nll = uses(types, {DPOLossType::SFT}) || options.rpo_alpha() > 0.0;
  if (needs_nll) {
    TORCH_CHECK(inputs.chosen_nll().defined(),
                "chosen_nll is required by loss_type sft and by rpo_alpha > 0 (the chosen completions' mean token "
                "NLL, a 0-dim tensor)");
    TORCH_CHECK(inputs.chosen_nll().dim() == 0 && at::isFloatingType(inputs.chosen_nll().scalar_type()),
                "chosen_nll must be a 0-dim floating tensor, got shape ", inputs.chosen_nll().sizes(), " and dtype ",
                inputs.chosen_nll().scalar_type());
  }
  if (inputs.weights().defined()) {
    TORCH_CHECK(!uses(types, {DPOLossType::AOT, DPOLossType::AOTUnpaired}),
                "weights (WPO) cannot be combined with loss_type aot or aot_unpaired: their sorted pairs are no longer "
                "the weighted pairs");
    TORCH_CHECK(inputs.weights().sizes() == pc.sizes(), "weights must have shape [B] matching policy_chosen_logps ",
                pc.sizes(), ", got ", inputs.weights().sizes());
    TORCH_CHECK(inputs.weights().device() == pc.device(), "weights must be on the device of policy_chosen_logps (",
                pc.device(), "), got ", inputs.weights().device());
  }
  if (uses(types, {DPOLossType::BCOPair}) && options.bco_running_mean()) {
    TORCH_CHECK(inputs.bco_running_mean().defined() && inputs.bco_running_count().defined(),
                "bco_running_mean=true needs state: use the DPOLoss module, or pass bco_running_mean and "
                "bco_running_count (0-dim float64 tensors updated in place)");
    for (const auto& [t, name] : {std::pair{inputs.bco_running_mean(), "bco_running_mean"},
                                   std::pair{inputs.bco_running_count(), "bco_running_count"}}) {
      TORCH_CHECK(t.dim() == 0 && t.scalar_type() == at::kDouble, name, " must be a 0-dim float64 tensor, got shape ",
                  t.sizes(), " and dtype ", t.scalar_type());
    }
  }
  if (options.check_finite()) {
    detail::check_finite(pc, "policy_chosen_logps");
    detail::check_finite(pr, "policy_rejected_logps");
    if (!options.reference_free()) {
      detail::check_finite(rc, "ref_chosen_logps");
      detail::check_finite(rr, "ref_rejected_logps");
    }
    if (needs_nll) detail::check_finite(inputs.chosen_nll().reshape({1}), "chosen_nll");
    if (inputs.weights().defined()) detail::check_finite(inputs.weights(), "weights");
  }
  if (needs_lengths && options.check_finite()) {
    // Lengths are counts; like the finiteness checks this reads values on the host, so it is skipped
    // together with them (check_finite=false keeps the call free of host syncs and traceable).
    for (const auto& [t, name] : {std::pair{inputs.chosen_lengths(), "chosen_lengths"},
                                   std::pair{inputs.rejected_lengths(), "rejected_lengths"}}) {
      const at::Tensor counts = t.to(at::kDouble);
      const std::string message = std::string(name) + " must hold finite token counts >= 0, got a negative or non-finite value";
      TORCH_CHECK(!detail::any_set(counts.isfinite().logical_not() | counts.lt(0), message), message);
    }
  }
}

// -(1 - eps) logsig(z) - eps logsig(-z).
at::Tensor smoothed_sigmoid(const at::Tensor& z, double eps) {
  at::Tensor loss = -at::log_sigmoid(z);
  if (eps > 0.0) loss = (1.0 - eps) * loss - eps * at::log_sigmoid(-z);
  return loss;
}

// The exponent clamp of the alpha divergence: the largest power that float32/bfloat16 (80) or float16 (11)
// survive, so exp never overflows into inf and then NaN.
double exponent_cap(at::ScalarType input_dtype) { return input_dtype == at::kHalf ? 11.0 : 80.0; }

at::Tensor apply_f_divergence(const at::Tensor& h, const DPOLossOptions& options, at::ScalarType input_dtype) {
  switch (options.f_divergence()) {
    case FDivergence::ReverseKL:
      return h;
    case FDivergence::ForwardKL:
      return -at::exp(at::clamp_max(-h, exponent_cap(input_dtype)));
    case FDivergence::JSDivergence:
      return at::log_sigmoid(h);
    case FDivergence::AlphaDivergence: {
      const double a = options.alpha_divergence_coef();
      if (std::abs(a - 1.0) < 1e-6) return h;
      return at::exp(at::clamp_max((a - 1.0) * h, exponent_cap(input_dtype))) / (a - 1.0);
    }
  }
  TORCH_CHECK(false, "unknown f_divergence");
}

struct PairTerms {
  at::Tensor pc, pr, qc, qr;  // policy and reference logps, accumulation dtype (q = 0 when reference-free)
  at::Tensor h_c, h_r;        // log-ratios
  at::Tensor s_c, s_r;        // f-divergence transformed log-ratios
};

at::Tensor one_loss(DPOLossType type, const PairTerms& t, const DPOLossOptions& options, const DPOLossInputs& inputs,
                    at::ScalarType acc) {
  const double beta = options.beta();
  const double eps = options.label_smoothing();
  const at::Tensor D = t.s_c - t.s_r;
  switch (type) {
    case DPOLossType::Sigmoid:
      return smoothed_sigmoid(beta * D, eps);
    case DPOLossType::Hinge:
      return at::relu(1.0 - beta * D);
    case DPOLossType::IPO:
    case DPOLossType::SigmoidNorm: {
      const at::Tensor lc = inputs.chosen_lengths().to(acc).clamp_min(1.0);
      const at::Tensor lr = inputs.rejected_lengths().to(acc).clamp_min(1.0);
      const at::Tensor normalised = t.s_c / lc - t.s_r / lr;
      if (type == DPOLossType::IPO) return (normalised - 1.0 / (2.0 * beta)).pow(2);
      return -at::log_sigmoid(beta * normalised);
    }
    case DPOLossType::ExoPair: {
      const at::Tensor z = beta * D;
      return at::sigmoid(z) * (at::log_sigmoid(z) - std::log1p(-eps)) +
             at::sigmoid(-z) * (at::log_sigmoid(-z) - std::log(eps));
    }
    case DPOLossType::NCAPair:
      return -at::log_sigmoid(beta * t.s_c) - 0.5 * at::log_sigmoid(-beta * t.s_c) -
             0.5 * at::log_sigmoid(-beta * t.s_r);
    case DPOLossType::Robust:
      return (-(1.0 - eps) * at::log_sigmoid(beta * D) + eps * at::log_sigmoid(-beta * D)) / (1.0 - 2.0 * eps);
    case DPOLossType::BCOPair: {
      if (!options.bco_running_mean()) return -at::log_sigmoid(beta * t.s_c) - at::log_sigmoid(-beta * t.s_r);
      // The running mean of batch reward means, updated with this batch before use (TRL <= 0.28's
      // RunningMoments, fed one scalar per batch).
      at::Tensor mean = inputs.bco_running_mean(), count = inputs.bco_running_count();
      at::Tensor batch_mean = at::cat({beta * t.h_c, beta * t.h_r}).mean().detach().to(mean.options());
      if (inputs.bco_global_batch_mean()) batch_mean = inputs.bco_global_batch_mean()(batch_mean).to(mean.options());
      const at::Tensor total = count + 1.0;
      mean.add_((batch_mean - mean) / total);
      count.copy_(total);
      const at::Tensor delta = mean.to(t.h_c.options());
      return -at::log_sigmoid(beta * t.h_c - delta) - at::log_sigmoid(-(beta * t.h_r - delta));
    }
    case DPOLossType::SPPOHard:
      return (t.s_c - 0.5 / beta).pow(2) + (t.s_r + 0.5 / beta).pow(2);
    case DPOLossType::AOT:
    case DPOLossType::AOTUnpaired: {
      const at::Tensor d = type == DPOLossType::AOT
                               ? std::get<0>(at::sort(t.pc - t.pr, 0)) - std::get<0>(at::sort(t.qc - t.qr, 0))
                               : std::get<0>(at::sort(t.h_c, 0)) - std::get<0>(at::sort(t.h_r, 0));
      return smoothed_sigmoid(beta * d, eps);
    }
    case DPOLossType::APOZero:
      return 1.0 - at::sigmoid(beta * t.h_c) + at::sigmoid(beta * t.h_r);
    case DPOLossType::APODown:
      // LOSSES.md: the anchor term uses raw h_c, the margin term D after the f-divergence.
      return at::sigmoid(beta * t.h_c) + 1.0 - at::sigmoid(beta * D);
    case DPOLossType::DiscoPOP: {
      const at::Tensor z = beta * D;
      const at::Tensor m = at::sigmoid(z / options.discopop_tau());
      return (1.0 - m) * (-at::log_sigmoid(z)) + m * at::exp(-z);
    }
    case DPOLossType::SFT:
      return inputs.chosen_nll().to(acc).expand(t.pc.sizes());
  }
  TORCH_CHECK(false, "unknown loss_type");
}

}  // namespace

LossOutput dpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                    const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                    const DPOLossOptions& options, const DPOLossInputs& inputs) {
  const std::vector<DPOLossType> types = selected_types(options);
  check_options(options, types);
  check_inputs(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, options, inputs,
               types);
  const auto in_dtype = policy_chosen_logps.scalar_type();
  const auto acc = at::toOpMathType(in_dtype);
  const double beta = options.beta();

  PairTerms t;
  t.pc = policy_chosen_logps.to(acc);
  t.pr = policy_rejected_logps.to(acc);
  t.qc = options.reference_free() ? at::zeros_like(t.pc) : ref_chosen_logps.to(acc);
  t.qr = options.reference_free() ? at::zeros_like(t.pr) : ref_rejected_logps.to(acc);
  t.h_c = t.pc - t.qc;
  t.h_r = t.pr - t.qr;
  t.s_c = apply_f_divergence(t.h_c, options, in_dtype);
  t.s_r = apply_f_divergence(t.h_r, options, in_dtype);

  at::Tensor losses;
  for (size_t k = 0; k < types.size(); ++k) {
    const double w = options.loss_weights().empty() ? 1.0 : options.loss_weights()[k];
    const at::Tensor term = one_loss(types[k], t, options, inputs, acc);
    losses = losses.defined() ? losses + w * term : (w == 1.0 ? term : w * term);
  }
  if (options.rpo_alpha() > 0.0) losses = losses + options.rpo_alpha() * inputs.chosen_nll().to(acc);
  if (inputs.weights().defined()) losses = losses * inputs.weights().detach().to(acc);

  LossOutput out;
  out.losses = losses.to(in_dtype);
  out.loss = detail::reduce(out.losses, options.reduction());
  const at::Tensor chosen_rewards = (beta * t.h_c).detach();
  const at::Tensor rejected_rewards = (beta * t.h_r).detach();
  out.chosen_rewards = chosen_rewards.to(in_dtype);
  out.rejected_rewards = rejected_rewards.to(in_dtype);

  const at::Tensor cr = chosen_rewards.to(at::kFloat);
  const at::Tensor rr = rejected_rewards.to(at::kFloat);
  out.metrics["rewards/chosen"] = cr.mean();
  out.metrics["rewards/rejected"] = rr.mean();
  out.metrics["rewards/accuracies"] = cr.gt(rr).to(at::kFloat).mean();
  out.metrics["rewards/margins"] = (cr - rr).mean();
  out.metrics["logps/chosen"] = t.pc.detach().to(at::kFloat).mean();
  out.metrics["logps/rejected"] = t.pr.detach().to(at::kFloat).mean();
  if (inputs.chosen_nll().defined()) out.metrics["nll_loss"] = inputs.chosen_nll().detach().to(at::kFloat);
  return out;
}

torch::Tensor wpo_pair_weights(const torch::Tensor& chosen_log_weights, const torch::Tensor& rejected_log_weights) {
  detail::check_batch_scores(chosen_log_weights, "chosen_log_weights");
  detail::check_same_batch(rejected_log_weights, "rejected_log_weights", chosen_log_weights, "chosen_log_weights");
  return at::exp(chosen_log_weights.detach() + rejected_log_weights.detach()).clamp_max(1.0);
}

}  // namespace functional

DPOLossImpl::DPOLossImpl(DPOLossOptions options_) : options(std::move(options_)) { reset(); }

void DPOLossImpl::reset() {
  bco_running_mean = register_buffer("bco_running_mean", torch::zeros({}, torch::kDouble));
  // TRL's RunningMoments starts its count at 1e-24, so the first batch mean becomes the mean.
  bco_running_count = register_buffer("bco_running_count", torch::full({}, 1e-24, torch::kDouble));
}

void DPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::DPOLoss(loss_type=";
  if (options.loss_types().empty()) {
    stream << to_string(options.loss_type());
  } else {
    for (size_t k = 0; k < options.loss_types().size(); ++k) stream << (k ? "+" : "") << to_string(options.loss_types()[k]);
  }
  stream << ", beta=" << options.beta() << ", label_smoothing=" << options.label_smoothing()
         << ", f_divergence=" << to_string(options.f_divergence()) << ")";
}

LossOutput DPOLossImpl::forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                                const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                                DPOLossInputs inputs) {
  if (!inputs.bco_running_mean().defined()) {
    inputs.bco_running_mean(bco_running_mean).bco_running_count(bco_running_count);
  }
  return functional::dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                              options, inputs);
}

}  // namespace prefopt
