// Pairwise preference losses with a reference model (the DPO family): per-pair losses, implicit rewards and
// TRL's metrics from summed sequence log-probs. Knows nothing of tokens or vocabularies; the scores may
// come from a language model, a diffusion model or anything else that yields a log-likelihood per sample.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "loss_output.h"
#include "options.h"

namespace prefopt {

/// The per-pair loss of DPOLoss, named as TRL names it. docs/losses.md gives each formula and its source.
enum class DPOLossType {
  Sigmoid,      ///< "sigmoid": DPO; with label_smoothing > 0, conservative DPO.
  Hinge,        ///< "hinge": SLiC.
  IPO,          ///< "ipo": length-averaged log-ratios (needs lengths).
  ExoPair,      ///< "exo_pair": EXO, label_smoothing in (0, 1).
  NCAPair,      ///< "nca_pair": NCA.
  Robust,       ///< "robust": robust DPO, label_smoothing in [0, 0.5).
  BCOPair,      ///< "bco_pair": BCO, optionally with a running-mean reward shift (module state).
  SPPOHard,     ///< "sppo_hard": SPPO with hard labels.
  AOT,          ///< "aot": alignment via optimal transport, paired.
  AOTUnpaired,  ///< "aot_unpaired": the same, unpaired.
  APOZero,      ///< "apo_zero": anchored preference optimisation, zero anchor.
  APODown,      ///< "apo_down": APO, down anchor.
  DiscoPOP,     ///< "discopop": log-ratio modulated loss.
  SigmoidNorm,  ///< "sigmoid_norm": DPO on length-averaged log-ratios (needs lengths).
  SFT,          ///< "sft": the chosen responses' mean token NLL (needs chosen_nll).
};
inline constexpr DPOLossType kSigmoid = DPOLossType::Sigmoid;
inline constexpr DPOLossType kHinge = DPOLossType::Hinge;
inline constexpr DPOLossType kIPO = DPOLossType::IPO;
inline constexpr DPOLossType kExoPair = DPOLossType::ExoPair;
inline constexpr DPOLossType kNCAPair = DPOLossType::NCAPair;
inline constexpr DPOLossType kRobust = DPOLossType::Robust;
inline constexpr DPOLossType kBCOPair = DPOLossType::BCOPair;
inline constexpr DPOLossType kSPPOHard = DPOLossType::SPPOHard;
inline constexpr DPOLossType kAOT = DPOLossType::AOT;
inline constexpr DPOLossType kAOTUnpaired = DPOLossType::AOTUnpaired;
inline constexpr DPOLossType kAPOZero = DPOLossType::APOZero;
inline constexpr DPOLossType kAPODown = DPOLossType::APODown;
inline constexpr DPOLossType kDiscoPOP = DPOLossType::DiscoPOP;
inline constexpr DPOLossType kSigmoidNorm = DPOLossType::SigmoidNorm;
inline constexpr DPOLossType kSFT = DPOLossType::SFT;

/// The f-divergence that shapes the log-ratio before the loss (TRL's f_divergence_type).
enum class FDivergence {
  ReverseKL,        ///< "reverse_kl": phi(h) = h (standard DPO).
  ForwardKL,        ///< "forward_kl": phi(h) = -exp(-h).
  JSDivergence,     ///< "js_divergence": phi(h) = logsigmoid(h).
  AlphaDivergence,  ///< "alpha_divergence": phi(h) = exp((a - 1) h) / (a - 1), a = alpha_divergence_coef.
};
inline constexpr FDivergence kReverseKL = FDivergence::ReverseKL;
inline constexpr FDivergence kForwardKL = FDivergence::ForwardKL;
inline constexpr FDivergence kJSDivergence = FDivergence::JSDivergence;
inline constexpr FDivergence kAlphaDivergence = FDivergence::AlphaDivergence;

/// TRL's names ("sigmoid", "reverse_kl", ...) and their parsers; an unknown name raises an error listing the
/// known ones.
std::string to_string(DPOLossType type);
std::string to_string(FDivergence divergence);
DPOLossType dpo_loss_type_from_string(std::string_view name);
FDivergence f_divergence_from_string(std::string_view name);

PREFOPT_OPTION_CHOICES(DPOLossType, kSigmoid, kHinge, kIPO, kExoPair, kNCAPair, kRobust, kBCOPair, kSPPOHard, kAOT,
                       kAOTUnpaired, kAPOZero, kAPODown, kDiscoPOP, kSigmoidNorm, kSFT);
PREFOPT_OPTION_CHOICES(FDivergence, kReverseKL, kForwardKL, kJSDivergence, kAlphaDivergence);

/// The declared options of DPOLoss (options.h): each row is type, name, default, meaning.
#define PREFOPT_DPO_LOSS_OPTIONS(X)                                                                          \
  X(DPOLossType, loss_type, kSigmoid, "The per-pair loss (TRL's names; docs/losses.md gives each formula).") \
  X(double, beta, 0.1, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(double, label_smoothing, 0.0,                                                                            \
    "eps of sigmoid (conservative DPO, [0, 0.5]), robust ([0, 0.5)), exo_pair ((0, 1)), aot/aot_unpaired "  \
    "([0, 0.5]); must be 0 when no selected loss type uses it.")                                             \
  X(FDivergence, f_divergence, kReverseKL, "The f-divergence shaping the log-ratio (TRL's f_divergence_type).") \
  X(double, alpha_divergence_coef, 0.5,                                                                      \
    "a of the alpha divergence; TRL's alpha_divergence_coef c is the same family with a = 1 - c.")          \
  X(double, discopop_tau, 0.05, "tau of discopop, > 0.")                                                    \
  X(bool, bco_running_mean, false,                                                                           \
    "bco_pair: subtract the running mean of the batch reward means (TRL <= 0.28); the module keeps the state.") \
  X(double, rpo_alpha, 0.0, "RPO: adds rpo_alpha * chosen_nll to every pair's loss; 0 = off.")              \
  X(bool, reference_free, false, "Ignore the reference model: q = 0 in the losses and rewards.")

/// Options of DPOLoss and functional::dpo_loss: the declared options above, then what only C++ and Python
/// callers set.
struct DPOLossOptions {
  PREFOPT_DPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  /// Several losses at once (TRL's list-valued loss_type): loss = sum_k loss_weights[k] * loss_k. When
  /// empty, loss_type alone.
  TORCH_ARG(std::vector<DPOLossType>, loss_types) = {};
  /// One weight per entry of loss_types (all 1 when empty), each finite.
  TORCH_ARG(std::vector<double>, loss_weights) = {};
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf (one reduction and a host sync on [B] values).
  /// With false, NaN/Inf propagate into the losses of the affected pairs and into the reduced loss.
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(DPOLossOptions, PREFOPT_DPO_LOSS_OPTIONS);

/// Inputs that some loss types or options need beyond the four summed log-probs. Each is named in the
/// error raised when a loss type needs it and it is missing; none is ever taken as zero.
struct DPOLossInputs {
  /// [B] completion token counts (>= 1 after clamping) of chosen and rejected: ipo, sigmoid_norm.
  TORCH_ARG(torch::Tensor, chosen_lengths);
  TORCH_ARG(torch::Tensor, rejected_lengths);
  /// 0-dim mean token NLL of the chosen completions over the batch: sft and rpo_alpha. Differentiable.
  TORCH_ARG(torch::Tensor, chosen_nll);
  /// [B] per-pair weights multiplying the losses (WPO's W = w_c w_r, see wpo_pair_weights); detached.
  TORCH_ARG(torch::Tensor, weights);
  /// bco_pair with bco_running_mean: 0-dim float64 running mean and count, updated in place.
  TORCH_ARG(torch::Tensor, bco_running_mean);
  TORCH_ARG(torch::Tensor, bco_running_count);
  /// bco_pair with bco_running_mean, when the batch is one share of a global batch spread over processes (data
  /// parallel): maps this share's 0-dim float64 mean reward to the global batch's (the mean over the ranks), so the
  /// running mean is the same on every rank and does not depend on the world size. Unset: this batch's own mean.
  TORCH_ARG(std::function<torch::Tensor(const torch::Tensor&)>, bco_global_batch_mean);
};

namespace functional {

/// DPO-family loss from summed sequence log-probs.
///
/// - policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: [B], one floating
///   dtype (float32, bfloat16, float16, float64), one device; B >= 1. The reference ones may be undefined
///   when reference_free is set. LD-DPO (TRL's ld_alpha) is applied before this call: see
///   prefopt::ld_dpo_logps in scoring.h.
/// - Computed in float32 (float64 for float64 input); `losses` and `loss` come back in the input dtype.
/// - chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps), rejected likewise: detached, before
///   the f-divergence, whatever the loss types and weights.
/// - metrics (detached, float32): rewards/chosen, rewards/rejected, rewards/accuracies (strict >),
///   rewards/margins, logps/chosen, logps/rejected, and nll_loss when chosen_nll is given.
///
/// Example:
/// ```
/// namespace F = prefopt::functional;
/// auto out = F::dpo_loss(pc, pr, rc, rr, prefopt::DPOLossOptions().loss_type(prefopt::kIPO).beta(0.1),
///                        prefopt::DPOLossInputs().chosen_lengths(lc).rejected_lengths(lr));
/// out.loss.backward();
/// double acc = out.metrics.at("rewards/accuracies").item<double>();
/// ```
LossOutput dpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                    const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                    const DPOLossOptions& options = {}, const DPOLossInputs& inputs = {});

/// WPO's per-pair weight from the per-sequence log-weights of scoring (mean over completion tokens of
/// logp_t - log sum_v p_v^2): W = min(1, exp(w_c + w_r)), detached. [B] -> [B].
torch::Tensor wpo_pair_weights(const torch::Tensor& chosen_log_weights, const torch::Tensor& rejected_log_weights);

}  // namespace functional

/// Module form of functional::dpo_loss; holds the options and, for bco_pair with bco_running_mean, the
/// running mean and count as buffers (so torch::save of the module checkpoints them).
///
/// Example:
/// ```
/// prefopt::DPOLoss loss(prefopt::DPOLossOptions().loss_type(prefopt::kSigmoid).beta(0.1));
/// auto out = loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected);
/// ```
class DPOLossImpl : public torch::nn::Cloneable<DPOLossImpl> {
 public:
  explicit DPOLossImpl(DPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                     DPOLossInputs inputs = {});

  DPOLossOptions options;
  /// 0-dim float64 buffers "bco_running_mean" and "bco_running_count".
  torch::Tensor bco_running_mean;
  torch::Tensor bco_running_count;
};
TORCH_MODULE(DPOLoss);

}  // namespace prefopt
