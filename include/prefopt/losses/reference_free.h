// Pairwise preference losses without a reference model (LOSSES.md section 2): SimPO, CPO (sigmoid, hinge,
// ipo and CPO-SimPO, each with an optional chosen-NLL term and TRL's AlphaPO reward shape) and ORPO's
// odds-ratio loss. They take summed completion log-probs of the policy and, where a loss length-normalises,
// the completion lengths; like every prefopt loss they never see tokens or vocabularies.
#pragma once

#include <string>
#include <string_view>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "loss_output.h"
#include "options.h"

namespace prefopt {

// ---------------------------------------------------------------------------------------------------------
// SimPO
// ---------------------------------------------------------------------------------------------------------

/// Options of SimPOLoss and functional::simpo_loss. The defaults are the SimPO paper's.
#define PREFOPT_SIMPO_LOSS_OPTIONS(X)                                                                        \
  X(double, beta, 2.0, "Reward scale, > 0 and finite.")                                                     \
  X(double, gamma, 0.5, "Target reward margin, finite (TRL's simpo_gamma; the absolute margin, not gamma / beta).") \
  X(double, label_smoothing, 0.0,                                                                            \
    "Probability that a label is flipped, in [0, 0.5]: -(1 - eps) logsig(z) - eps logsig(-z).")
struct SimPOLossOptions {
  PREFOPT_SIMPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf, or a length is negative (one host sync per input).
  /// With false, NaN/Inf propagate into the affected pairs' losses and into the reduced loss.
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(SimPOLossOptions, PREFOPT_SIMPO_LOSS_OPTIONS);

// ---------------------------------------------------------------------------------------------------------
// CPO
// ---------------------------------------------------------------------------------------------------------

/// The per-pair loss of CPOLoss, named as TRL's CPOConfig names it.
enum class CPOLossType {
  Sigmoid,  ///< "sigmoid": CPO, `-(1-eps) logsig(beta z) - eps logsig(-beta z)`, z = p_c - p_r.
  Hinge,    ///< "hinge": `relu(1 - beta z)`.
  IPO,      ///< "ipo": `(z - 1/(2 beta))^2` on length-averaged log-probs (needs lengths).
  SimPO,    ///< "simpo": SimPO on length-averaged log-probs (needs lengths); with cpo_alpha > 0, CPO-SimPO.
};
inline constexpr CPOLossType kCPOSigmoid = CPOLossType::Sigmoid;
inline constexpr CPOLossType kCPOHinge = CPOLossType::Hinge;
inline constexpr CPOLossType kCPOIPO = CPOLossType::IPO;
inline constexpr CPOLossType kCPOSimPO = CPOLossType::SimPO;

/// TRL's names ("sigmoid", "hinge", "ipo", "simpo") and the parser; an unknown name raises an error listing
/// the known ones. TRL's "alphapo" is sugar for simpo with cpo_alpha 0 and is not a separate type here.
std::string to_string(CPOLossType type);
CPOLossType cpo_loss_type_from_string(std::string_view name);

/// Options of CPOLoss and functional::cpo_loss. The defaults are TRL's CPOConfig defaults.
PREFOPT_OPTION_CHOICES(CPOLossType, kCPOSigmoid, kCPOHinge, kCPOIPO, kCPOSimPO);

#define PREFOPT_CPO_LOSS_OPTIONS(X)                                                                          \
  X(CPOLossType, loss_type, kCPOSigmoid, "The per-pair loss (TRL's CPOConfig names).")                      \
  X(double, beta, 0.1, "Temperature, > 0 and finite (for ipo, the regulariser tau of the IPO paper).")      \
  X(double, label_smoothing, 0.0, "eps of sigmoid and simpo, in [0, 0.5]; must be 0 for hinge and ipo.")    \
  X(double, cpo_alpha, 1.0,                                                                                  \
    "Weight of the chosen NLL (behaviour-cloning) term, finite and >= 0; > 0 needs the chosen NLL.")       \
  X(double, simpo_gamma, 0.5, "Target reward margin of loss_type simpo (absolute, as TRL's simpo_gamma).")  \
  X(double, alpha, 0.0,                                                                                      \
    "AlphaPO's reward shape (TRL's alpha): 0 uses the log-probs; otherwise each log-prob l becomes "        \
    "-expm1(-alpha l) / alpha before the loss and the rewards.")
struct CPOLossOptions {
  PREFOPT_CPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf, or a length is negative (one host sync per input).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(CPOLossOptions, PREFOPT_CPO_LOSS_OPTIONS);

/// Inputs that some CPO loss types or options need beyond the two summed log-probs. None is ever taken as zero:
/// a loss type that needs one and misses it raises an error naming it.
struct CPOLossInputs {
  /// [B] completion token counts (clamped to >= 1) of chosen and rejected: ipo and simpo.
  TORCH_ARG(torch::Tensor, chosen_lengths);
  TORCH_ARG(torch::Tensor, rejected_lengths);
  /// 0-dim mean token NLL of the chosen completions over the batch (prefopt::mean_token_nll; TRL's nll_loss):
  /// needed when cpo_alpha > 0. Differentiable.
  TORCH_ARG(torch::Tensor, chosen_nll);
};

// ---------------------------------------------------------------------------------------------------------
// ORPO
// ---------------------------------------------------------------------------------------------------------

/// Options of ORPOLoss and functional::orpo_loss. The default is TRL's ORPOConfig default.
#define PREFOPT_ORPO_LOSS_OPTIONS(X) \
  X(double, beta, 0.1, "lambda of the ORPO paper (TRL's beta): weight of the odds-ratio term, > 0 and finite.")
struct ORPOLossOptions {
  PREFOPT_ORPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf, a length is negative, or a mean log-prob is > 0 (one
  /// host sync per input).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(ORPOLossOptions, PREFOPT_ORPO_LOSS_OPTIONS);

namespace functional {

/// SimPO (Meng et al. 2024): `-(1-eps) logsig(z) - eps logsig(-z)`, `z = beta (p_c/L_c - p_r/L_r) - gamma`.
///
/// - policy_chosen_logps, policy_rejected_logps: [B] summed completion log-probs of the policy; one floating
///   dtype (float32, bfloat16, float16, float64) and device; B >= 1.
/// - chosen_lengths, rejected_lengths: [B] completion token counts (any real or integer dtype, clamped to
///   >= 1), same device. To pass log-probs that are already length-averaged, give lengths of ones.
/// - Computed in float32 (float64 for float64 input); `losses` and `loss` come back in the input dtype.
/// - chosen_rewards = beta * p_c / L_c, rejected_rewards = beta * p_r / L_r: detached.
/// - metrics (detached, float32): rewards/chosen, rewards/rejected, rewards/accuracies (strict >),
///   rewards/margins, logps/chosen, logps/rejected (means of the length-averaged log-probs, as TRL logs them).
///
/// Example:
/// ```
/// auto out = prefopt::functional::simpo_loss(pc, pr, lc, lr, prefopt::SimPOLossOptions().beta(2.5).gamma(1.0));
/// out.loss.backward();
/// ```
LossOutput simpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                      const torch::Tensor& chosen_lengths, const torch::Tensor& rejected_lengths,
                      const SimPOLossOptions& options = {});

/// CPO (Xu et al. 2024) as TRL's CPOTrainer computes it: per pair `loss_type(z) + cpo_alpha * chosen_nll`,
/// so that the mean over the batch is TRL's `losses.mean() + cpo_alpha * nll_loss`.
///
/// - policy_chosen_logps, policy_rejected_logps: [B] summed completion log-probs; one floating dtype and device.
///   ipo and simpo divide them by CPOLossInputs::chosen_lengths / rejected_lengths (required for those).
/// - With l_c, l_r the log-probs the loss type uses (summed, or length-averaged for ipo/simpo) and, when
///   alpha != 0, shaped by AlphaPO, `z = l_c - l_r`: sigmoid `-(1-eps) logsig(beta z) - eps logsig(-beta z)`,
///   hinge `relu(1 - beta z)`, ipo `(z - 1/(2 beta))^2`, simpo the sigmoid form on `z - simpo_gamma / beta`.
/// - chosen_nll (CPOLossInputs) must be given when cpo_alpha > 0; gradients flow through it.
/// - chosen_rewards = beta * l_c, rejected_rewards = beta * l_r: detached.
/// - metrics (detached, float32): rewards/chosen, rewards/rejected, rewards/accuracies (strict >),
///   rewards/margins, logps/chosen, logps/rejected (means of the summed or length-averaged log-probs the loss
///   type uses, before AlphaPO), and nll_loss when chosen_nll is given.
///
/// Example:
/// ```
/// auto nll = prefopt::mean_token_nll(chosen.token_logps, chosen_labels.ne(-100));
/// auto out = prefopt::functional::cpo_loss(pc, pr, prefopt::CPOLossOptions().beta(0.1).cpo_alpha(1.0),
///                                          prefopt::CPOLossInputs().chosen_nll(nll));
/// ```
LossOutput cpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                    const CPOLossOptions& options = {}, const CPOLossInputs& inputs = {});

/// ORPO (Hong et al. 2024): per pair `chosen_nll - beta * logsig(log_odds)` with mean token log-probs
/// `m = p / L` and `log_odds = (m_c - m_r) - (log1mexp(m_c) - log1mexp(m_r))`, the log-odds term always in
/// float32 or wider (`log1mexp(x) = log1p(-exp(x))` for x < -ln 2, else `log(-expm1(x))`). The batch mean is
/// TRL's `nll_loss - losses.mean()`.
///
/// - policy_chosen_logps, policy_rejected_logps: [B] summed completion log-probs; chosen_lengths,
///   rejected_lengths: [B] completion token counts (clamped to >= 1). Give lengths of ones for log-probs that
///   are already averaged. Each mean log-prob must be <= 0 (checked with check_finite).
/// - chosen_nll: 0-dim mean token NLL of the chosen completions (prefopt::mean_token_nll). Differentiable.
/// - chosen_rewards = beta * m_c, rejected_rewards = beta * m_r: detached.
/// - metrics (detached, float32): rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins,
///   logps/chosen, logps/rejected (means of m), nll_loss, log_odds_ratio (mean of logsig(log_odds)) and
///   log_odds_chosen (mean of log_odds): TRL's names and values.
///
/// Example:
/// ```
/// auto out = prefopt::functional::orpo_loss(pc, pr, lc, lr, nll, prefopt::ORPOLossOptions().beta(0.1));
/// ```
LossOutput orpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& chosen_lengths, const torch::Tensor& rejected_lengths,
                     const torch::Tensor& chosen_nll, const ORPOLossOptions& options = {});

}  // namespace functional

/// Module form of functional::simpo_loss.
///
/// Example:
/// ```
/// prefopt::SimPOLoss loss(prefopt::SimPOLossOptions().beta(2.0).gamma(0.5));
/// auto out = loss(pc, pr, lc, lr);
/// ```
class SimPOLossImpl : public torch::nn::Cloneable<SimPOLossImpl> {
 public:
  explicit SimPOLossImpl(SimPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& chosen_lengths, const torch::Tensor& rejected_lengths);

  SimPOLossOptions options;
};
TORCH_MODULE(SimPOLoss);

/// Module form of functional::cpo_loss.
///
/// Example:
/// ```
/// prefopt::CPOLoss loss(prefopt::CPOLossOptions().loss_type(prefopt::kCPOSimPO).cpo_alpha(0.05));
/// auto out = loss(pc, pr, prefopt::CPOLossInputs().chosen_lengths(lc).rejected_lengths(lr).chosen_nll(nll));
/// ```
class CPOLossImpl : public torch::nn::Cloneable<CPOLossImpl> {
 public:
  explicit CPOLossImpl(CPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const CPOLossInputs& inputs = {});

  CPOLossOptions options;
};
TORCH_MODULE(CPOLoss);

/// Module form of functional::orpo_loss.
///
/// Example:
/// ```
/// prefopt::ORPOLoss loss(prefopt::ORPOLossOptions().beta(0.1));
/// auto out = loss(pc, pr, lc, lr, nll);
/// ```
class ORPOLossImpl : public torch::nn::Cloneable<ORPOLossImpl> {
 public:
  explicit ORPOLossImpl(ORPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& chosen_lengths, const torch::Tensor& rejected_lengths,
                     const torch::Tensor& chosen_nll);

  ORPOLossOptions options;
};
TORCH_MODULE(ORPOLoss);

}  // namespace prefopt
