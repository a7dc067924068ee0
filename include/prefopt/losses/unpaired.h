// Unpaired preference losses (LOSSES.md section 2): KTO and TRL's apo_zero_unpaired. Each example is one
// completion with a label, desirable or undesirable, instead of a chosen/rejected pair; KTO compares its
// log-ratio with a detached KL baseline estimated from mismatched prompt/completion pairs. The loss takes
// summed completion log-probs as [B] scores and never sees tokens or vocabularies.
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

/// The per-example loss of KTOLoss, named as TRL's KTOConfig names it.
enum class KTOLossType {
  KTO,              ///< "kto": desirable `1 - sigma(beta (h - z0))`, undesirable `1 - sigma(beta (z0 - h))`.
  APOZeroUnpaired,  ///< "apo_zero_unpaired": desirable `1 - sigma(beta h)`, undesirable `sigma(beta h)`; no z0.
};
inline constexpr KTOLossType kKTO = KTOLossType::KTO;
inline constexpr KTOLossType kAPOZeroUnpaired = KTOLossType::APOZeroUnpaired;

/// TRL's names ("kto", "apo_zero_unpaired") and the parser; an unknown name raises an error listing the known ones.
std::string to_string(KTOLossType type);
KTOLossType kto_loss_type_from_string(std::string_view name);

PREFOPT_OPTION_CHOICES(KTOLossType, kKTO, kAPOZeroUnpaired);

/// The declared options of KTOLoss (options.h): type, name, default, meaning. The defaults are TRL's KTOConfig's.
#define PREFOPT_KTO_LOSS_OPTIONS(X)                                                                          \
  X(KTOLossType, loss_type, kKTO, "kto or apo_zero_unpaired (TRL's names).")                                 \
  X(double, beta, 0.1, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(double, desirable_weight, 1.0, "lambda_D: weight of the desirable examples' losses, finite and >= 0.")  \
  X(double, undesirable_weight, 1.0, "lambda_U: weight of the undesirable examples' losses, finite and >= 0.")

/// Options of KTOLoss and functional::kto_loss.
struct KTOLossOptions {
  PREFOPT_KTO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf (one host sync per input). With false, NaN/Inf propagate:
  /// into the affected examples' losses, or, through z0, into every example's loss.
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(KTOLossOptions, PREFOPT_KTO_LOSS_OPTIONS);

/// KTO's KL baseline z0, as log-probs of mismatched pairs or precomputed. loss_type kto needs exactly one of
/// the two forms; apo_zero_unpaired uses neither and rejects them.
struct KTOLossInputs {
  /// [M] summed completion log-probs of mismatched prompt/completion pairs (TRL's KL completions: each prompt
  /// with another example's completion) under the policy and the reference; M >= 1, the dtype and device of
  /// policy_logps. z0 = max(0, mean(policy_kl_logps - ref_kl_logps)), detached.
  TORCH_ARG(torch::Tensor, policy_kl_logps);
  TORCH_ARG(torch::Tensor, ref_kl_logps);
  /// 0-dim z0 before clamping, e.g. the mean KL all-reduced across processes as TRL gathers it; used as
  /// max(0, kl), detached.
  TORCH_ARG(torch::Tensor, kl);
};

namespace functional {

/// KTO (Ethayarajh et al. 2024) as TRL's KTOTrainer.kto_loss computes it, with the examples kept in input order.
///
/// - policy_logps, ref_logps: [B] summed completion log-probs; one floating dtype (float32, bfloat16, float16,
///   float64) and device; B >= 1. h = policy_logps - ref_logps.
/// - labels: [B] bool, true for a desirable example, false for an undesirable one. Either side may be empty.
/// - Per example: kto: desirable `desirable_weight (1 - sigma(beta (h - z0)))`, undesirable
///   `undesirable_weight (1 - sigma(beta (z0 - h)))`; apo_zero_unpaired: `desirable_weight (1 - sigma(beta h))`
///   and `undesirable_weight sigma(beta h)`. z0 (KTOLossInputs) is detached: no gradient reaches the KL
///   log-probs. The mean over all B examples is TRL's loss.
/// - Computed in float32 (float64 for float64 input); `losses` and `loss` come back in the input dtype.
/// - rewards: [B] `beta h`, detached; chosen_rewards / rejected_rewards: the desirable / undesirable entries
///   of rewards in input order (TRL's chosen_rewards and rejected_rewards), possibly empty.
/// - metrics (detached, float32), TRL's names: kl (z0; 0 for apo_zero_unpaired), count/chosen, count/rejected,
///   rewards/chosen_sum, rewards/rejected_sum, logps/chosen_sum, logps/rejected_sum (sums over each side),
///   and the means TRL logs from them: rewards/chosen, rewards/rejected, logps/chosen, logps/rejected
///   (0 for an empty side), rewards/margins = rewards/chosen - rewards/rejected.
///
/// Example:
/// ```
/// auto out = prefopt::functional::kto_loss(policy, ref, labels, prefopt::KTOLossOptions().beta(0.1),
///                                          prefopt::KTOLossInputs().policy_kl_logps(pkl).ref_kl_logps(rkl));
/// out.loss.backward();
/// ```
LossOutput kto_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                    const KTOLossOptions& options = {}, const KTOLossInputs& inputs = {});

}  // namespace functional

/// Module form of functional::kto_loss.
///
/// Example:
/// ```
/// prefopt::KTOLoss loss(prefopt::KTOLossOptions().desirable_weight(1.0).undesirable_weight(1.33));
/// auto out = loss(policy, ref, labels, prefopt::KTOLossInputs().policy_kl_logps(pkl).ref_kl_logps(rkl));
/// ```
class KTOLossImpl : public torch::nn::Cloneable<KTOLossImpl> {
 public:
  explicit KTOLossImpl(KTOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                     const KTOLossInputs& inputs = {});

  KTOLossOptions options;
};
TORCH_MODULE(KTOLoss);

}  // namespace prefopt
