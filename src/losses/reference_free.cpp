// SimPO, CPO and ORPO (LOSSES.md section 2): per-pair losses, rewards and TRL's metrics from summed policy
// log-probs, completion lengths and the chosen NLL. No reference model. The arithmetic runs on [B] tensors in
// float32 (float64 for float64 inputs), never on tokens; ORPO's log-odds never drop below float32.
#include <prefopt/losses/reference_free.h>

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

struct CPOTypeName {
  CPOLossType type;
  const char* name;
};

constexpr CPOTypeName kCPOTypeNames[] = {
    {CPOLossType::Sigmoid, "sigmoid"},
    {CPOLossType::Hinge, "hinge"},
    {CPOLossType::IPO, "ipo"},
    {CPOLossType::SimPO, "simpo"},
};

}  // namespace

std::string to_string(CPOLossType type) {
  for (const auto& entry : kCPOTypeNames) {
    if (entry.type == type) return entry.name;
  }
  TORCH_CHECK(false, "unknown CPOLossType ", static_cast<int>(type));
}

CPOLossType cpo_loss_type_from_string(std::string_view name) {
  std::ostringstream known;
  for (const auto& entry : kCPOTypeNames) {
    if (name == entry.name) return entry.type;
    known << (&entry == kCPOTypeNames ? "" : ", ") << entry.name;
  }
  TORCH_CHECK(false, "loss_type must be one of: ", known.str(), "; got '", name, "'");
}

namespace functional {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_finite_option(double value, const char* name) {
  TORCH_CHECK(std::isfinite(value), name, " must be finite, got ", value);
}

// [B] token counts matching `anchor`: any real or integer dtype, anchor's device; finite and >= 0 when checked.
void check_lengths(const at::Tensor& lengths, const char* name, const at::Tensor& anchor, const char* anchor_name,
                   const char* needed_by, bool check_values) {
  TORCH_CHECK(lengths.defined(), name, " is required by ", needed_by, " (completion token counts, [B])");
  TORCH_CHECK(lengths.sizes() == anchor.sizes(), name, " must have shape [B] matching ", anchor_name, " ",
              anchor.sizes(), ", got ", lengths.sizes());
  TORCH_CHECK(lengths.scalar_type() != at::kBool && !at::isComplexType(lengths.scalar_type()), name,
              " must be a real or integer tensor of token counts, got ", lengths.scalar_type());
  TORCH_CHECK(lengths.device() == anchor.device(), name, " must be on the device of ", anchor_name, " (",
              anchor.device(), "), got ", lengths.device());
  if (check_values) {
    const at::Tensor counts = lengths.to(at::kDouble);
    const std::string message = std::string(name) + " must hold finite token counts >= 0, got a negative or non-finite value";
    TORCH_CHECK(!detail::any_set(counts.isfinite().logical_not() | counts.lt(0), message), message);
  }
}

// A 0-dim floating tensor: the batch's mean chosen-token NLL.
void check_nll(const at::Tensor& nll, const char* needed_by, bool check_values) {
  TORCH_CHECK(nll.defined(), "chosen_nll is required by ", needed_by,
              " (the chosen completions' mean token NLL, a 0-dim tensor; see prefopt::mean_token_nll)");
  TORCH_CHECK(nll.dim() == 0 && at::isFloatingType(nll.scalar_type()),
              "chosen_nll must be a 0-dim floating tensor, got shape ", nll.sizes(), " and dtype ", nll.scalar_type());
  if (check_values) detail::check_finite(nll.reshape({1}), "chosen_nll");
}

void check_pair(const at::Tensor& pc, const at::Tensor& pr, bool check_values) {
  detail::check_batch_scores(pc, "policy_chosen_logps");
  detail::check_same_batch(pr, "policy_rejected_logps", pc, "policy_chosen_logps");
  if (check_values) {
    detail::check_finite(pc, "policy_chosen_logps");
    detail::check_finite(pr, "policy_rejected_logps");
  }
}

// -(1 - eps) logsig(z) - eps logsig(-z).
at::Tensor smoothed_sigmoid(const at::Tensor& z, double eps) {
  at::Tensor loss = -at::log_sigmoid(z);
  if (eps > 0.0) loss = (1.0 - eps) * loss - eps * at::log_sigmoid(-z);
  return loss;
}

// Per-length mean, lengths clamped to >= 1, in the accumulation dtype.
at::Tensor per_token(const at::Tensor& logps, const at::Tensor& lengths, at::ScalarType acc) {
  return logps / lengths.to(acc).clamp_min(1.0);
}

// Detached rewards, then the pairwise TRL metrics from them and from the log-probs the loss used.
void fill_pair_outputs(LossOutput& out, const at::Tensor& chosen_rewards, const at::Tensor& rejected_rewards,
                       const at::Tensor& chosen_logps, const at::Tensor& rejected_logps, at::ScalarType in_dtype) {
  out.chosen_rewards = chosen_rewards.detach().to(in_dtype);
  out.rejected_rewards = rejected_rewards.detach().to(in_dtype);
  const at::Tensor cr = chosen_rewards.detach().to(at::kFloat);
  const at::Tensor rr = rejected_rewards.detach().to(at::kFloat);
  out.metrics["rewards/chosen"] = cr.mean();
  out.metrics["rewards/rejected"] = rr.mean();
  out.metrics["rewards/accuracies"] = chosen_rewards.detach().gt(rejected_rewards.detach()).to(at::kFloat).mean();
  out.metrics["rewards/margins"] = (chosen_rewards.detach() - rejected_rewards.detach()).to(at::kFloat).mean();
  out.metrics["logps/chosen"] = chosen_logps.detach().to(at::kFloat).mean();
  out.metrics["logps/rejected"] = rejected_logps.detach().to(at::kFloat).mean();
}

// log(1 - exp(x)) for x <= 0 without cancellation: log1p(-exp(x)) below -ln 2, log(-expm1(x)) above.
at::Tensor log1mexp(const at::Tensor& x) {
  constexpr double kMinusLn2 = -0.6931471805599453;
  // Each branch sees an argument on its own side of -ln 2, so the unused lane never holds a NaN or an
  // infinity whose gradient would leak through at::where.
  const at::Tensor far = at::log1p(-at::exp(at::clamp_max(x, kMinusLn2)));
  const at::Tensor near = at::log(-at::expm1(at::clamp_min(x, kMinusLn2)));
  return at::where(x.lt(kMinusLn2), far, near);
}

}  // namespace

LossOutput simpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                      const torch::Tensor& chosen_lengths, const torch::Tensor& rejected_lengths,
                      const SimPOLossOptions& options) {
  detail::check_option_range(options.beta(), "beta", 0.0, kInf, /*low_open=*/true);
  check_finite_option(options.gamma(), "gamma");
  detail::check_option_range(options.label_smoothing(), "label_smoothing", 0.0, 0.5, /*low_open=*/false);
  const bool check = options.check_finite();
  check_pair(policy_chosen_logps, policy_rejected_logps, check);
  check_lengths(chosen_lengths, "chosen_lengths", policy_chosen_logps, "policy_chosen_logps", "SimPO", check);
  check_lengths(rejected_lengths, "rejected_lengths", policy_chosen_logps, "policy_chosen_logps", "SimPO", check);

  const auto in_dtype = policy_chosen_logps.scalar_type();
  const auto acc = at::toOpMathType(in_dtype);
  const double beta = options.beta();
  const at::Tensor mc = per_token(policy_chosen_logps.to(acc), chosen_lengths, acc);
  const at::Tensor mr = per_token(policy_rejected_logps.to(acc), rejected_lengths, acc);
  const at::Tensor losses = smoothed_sigmoid(beta * (mc - mr) - options.gamma(), options.label_smoothing());

  LossOutput out;
  out.losses = losses.to(in_dtype);
  out.loss = detail::reduce(out.losses, options.reduction());
  fill_pair_outputs(out, beta * mc, beta * mr, mc, mr, in_dtype);
  return out;
}

LossOutput cpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                    const CPOLossOptions& options, const CPOLossInputs& inputs) {
  const CPOLossType type = options.loss_type();
  const std::string type_name = to_string(type);
  detail::check_option_range(options.beta(), "beta", 0.0, kInf, /*low_open=*/true);
  if (type == CPOLossType::Sigmoid || type == CPOLossType::SimPO) {
    detail::check_option_range(options.label_smoothing(), "label_smoothing (for loss_type " + type_name + ")", 0.0,
                               0.5, /*low_open=*/false);
  } else {
    TORCH_CHECK(options.label_smoothing() == 0.0, "label_smoothing must be 0 for loss_type ", type_name,
                " (only sigmoid and simpo use it), got ", options.label_smoothing());
  }
  TORCH_CHECK(std::isfinite(options.cpo_alpha()) && options.cpo_alpha() >= 0.0,
              "cpo_alpha must be finite and >= 0, got ", options.cpo_alpha());
  check_finite_option(options.simpo_gamma(), "simpo_gamma");
  check_finite_option(options.alpha(), "alpha");

  const bool check = options.check_finite();
  check_pair(policy_chosen_logps, policy_rejected_logps, check);
  const bool averaged = type == CPOLossType::IPO || type == CPOLossType::SimPO;
  const std::string needed_by = "loss_type " + type_name;
  if (averaged) {
    check_lengths(inputs.chosen_lengths(), "chosen_lengths", policy_chosen_logps, "policy_chosen_logps",
                  needed_by.c_str(), check);
    check_lengths(inputs.rejected_lengths(), "rejected_lengths", policy_chosen_logps, "policy_chosen_logps",
                  needed_by.c_str(), check);
  }
  if (options.cpo_alpha() > 0.0) {
    check_nll(inputs.chosen_nll(), "cpo_alpha > 0", check);
  } else if (inputs.chosen_nll().defined()) {
    check_nll(inputs.chosen_nll(), "the nll_loss metric", check);
  }

  const auto in_dtype = policy_chosen_logps.scalar_type();
  const auto acc = at::toOpMathType(in_dtype);
  const double beta = options.beta();
  at::Tensor lc = policy_chosen_logps.to(acc);
  at::Tensor lr = policy_rejected_logps.to(acc);
  if (averaged) {
    lc = per_token(lc, inputs.chosen_lengths(), acc);
    lr = per_token(lr, inputs.rejected_lengths(), acc);
  }
  // AlphaPO: r = (1 - p^(-alpha)) / alpha with p = exp(l), i.e. -expm1(-alpha l) / alpha.
  const double alpha = options.alpha();
  const at::Tensor rc = alpha == 0.0 ? lc : -at::expm1(-alpha * lc) / alpha;
  const at::Tensor rr = alpha == 0.0 ? lr : -at::expm1(-alpha * lr) / alpha;
  const at::Tensor z = rc - rr;

  at::Tensor losses;
  switch (type) {
    case CPOLossType::Sigmoid:
      losses = smoothed_sigmoid(beta * z, options.label_smoothing());
      break;
    case CPOLossType::Hinge:
      losses = at::relu(1.0 - beta * z);
      break;
    case CPOLossType::IPO:
      losses = (z - 1.0 / (2.0 * beta)).pow(2);
      break;
    case CPOLossType::SimPO:
      losses = smoothed_sigmoid(beta * z - options.simpo_gamma(), options.label_smoothing());
      break;
  }
  if (options.cpo_alpha() > 0.0) losses = losses + options.cpo_alpha() * inputs.chosen_nll().to(acc);

  LossOutput out;
  out.losses = losses.to(in_dtype);
  out.loss = detail::reduce(out.losses, options.reduction());
  fill_pair_outputs(out, beta * rc, beta * rr, lc, lr, in_dtype);
  if (inputs.chosen_nll().defined()) out.metrics["nll_loss"] = inputs.chosen_nll().detach().to(at::kFloat);
  return out;
}

LossOutput orpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& chosen_lengths, const torch::Tensor& rejected_lengths,
                     const torch::Tensor& chosen_nll, const ORPOLossOptions& options) {
  detail::check_option_range(options.beta(), "beta", 0.0, kInf, /*low_open=*/true);
  const bool check = options.check_finite();
  check_pair(policy_chosen_logps, policy_rejected_logps, check);
  check_lengths(chosen_lengths, "chosen_lengths", policy_chosen_logps, "policy_chosen_logps", "ORPO", check);
  check_lengths(rejected_lengths, "rejected_lengths", policy_chosen_logps, "policy_chosen_logps", "ORPO", check);
  check_nll(chosen_nll, "ORPO", check);

  const auto in_dtype = policy_chosen_logps.scalar_type();
  // The log-odds need float32 at least: log1mexp of a mean log-prob near 0 loses everything in 16 bits.
  const auto acc = in_dtype == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor mc = per_token(policy_chosen_logps.to(acc), chosen_lengths, acc);
  const at::Tensor mr = per_token(policy_rejected_logps.to(acc), rejected_lengths, acc);
  if (check) {
    for (const auto& [m, name] : {std::pair{mc, "policy_chosen_logps / chosen_lengths"},
                                  std::pair{mr, "policy_rejected_logps / rejected_lengths"}}) {
      const at::Tensor positive = m.gt(0);
      if (detail::any_set(positive, std::string(name) + " must be <= 0 (a mean token log-prob)")) {
        const int64_t index = positive.nonzero().select(1, 0)[0].item<int64_t>();
        TORCH_CHECK(false, name, " must be <= 0 (a mean token log-prob), got ", m[index].item<double>(),
                    " at index ", index);
      }
    }
  }
  const at::Tensor log_odds = (mc - mr) - (log1mexp(mc) - log1mexp(mr));
  const at::Tensor ratio = at::log_sigmoid(log_odds);
  const at::Tensor losses = chosen_nll.to(acc) - options.beta() * ratio;

  LossOutput out;
  out.losses = losses.to(in_dtype);
  out.loss = detail::reduce(out.losses, options.reduction());
  fill_pair_outputs(out, options.beta() * mc, options.beta() * mr, mc, mr, in_dtype);
  out.metrics["nll_loss"] = chosen_nll.detach().to(at::kFloat);
  out.metrics["log_odds_ratio"] = ratio.detach().mean().to(at::kFloat);
  out.metrics["log_odds_chosen"] = log_odds.detach().mean().to(at::kFloat);
  return out;
}

}  // namespace functional

SimPOLossImpl::SimPOLossImpl(SimPOLossOptions options_) : options(std::move(options_)) { reset(); }
void SimPOLossImpl::reset() {}
void SimPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::SimPOLoss(beta=" << options.beta() << ", gamma=" << options.gamma()
         << ", label_smoothing=" << options.label_smoothing() << ")";
}
LossOutput SimPOLossImpl::forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                                  const torch::Tensor& chosen_lengths, const torch::Tensor& rejected_lengths) {
  return functional::simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, options);
}

CPOLossImpl::CPOLossImpl(CPOLossOptions options_) : options(std::move(options_)) { reset(); }
void CPOLossImpl::reset() {}
void CPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::CPOLoss(loss_type=" << to_string(options.loss_type()) << ", beta=" << options.beta()
         << ", label_smoothing=" << options.label_smoothing() << ", cpo_alpha=" << options.cpo_alpha()
         << ", simpo_gamma=" << options.simpo_gamma() << ", alpha=" << options.alpha() << ")";
}
LossOutput CPOLossImpl::forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                                const CPOLossInputs& inputs) {
  return functional::cpo_loss(policy_chosen_logps, policy_rejected_logps, options, inputs);
}

ORPOLossImpl::ORPOLossImpl(ORPOLossOptions options_) : options(std::move(options_)) { reset(); }
void ORPOLossImpl::reset() {}
void ORPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::ORPOLoss(beta=" << options.beta() << ")";
}
LossOutput ORPOLossImpl::forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                                 const torch::Tensor& chosen_lengths, const torch::Tensor& rejected_lengths,
                                 const torch::Tensor& chosen_nll) {
  return functional::orpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths,
                               chosen_nll, options);
}

}  // namespace prefopt
