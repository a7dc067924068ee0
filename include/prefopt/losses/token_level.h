// Token-level DPO (TDPO, LOSSES.md section 3): DPO whose margin also carries the sequential KL divergence
// KL(reference || policy) summed over each response's completion tokens. The loss takes that per-sequence
// KL as a [B] score, computed by scoring (the fused token_kl kernel reads both logits rows once); it never
// sees a vocabulary.
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

/// TDPO's two margins.
enum class TDPOVariant {
  TDPO1,  ///< z = (h_c - h_r) - (K_r - K_c)
  TDPO2,  ///< z = (h_c - h_r) - alpha (K_r - sg(K_c)): only the chosen KL is detached
};
inline constexpr TDPOVariant kTDPO1 = TDPOVariant::TDPO1;
inline constexpr TDPOVariant kTDPO2 = TDPOVariant::TDPO2;

/// "tdpo1" or "tdpo2".
std::string to_string(TDPOVariant variant);
/// Parses "tdpo1" / "tdpo2"; anything else raises an error naming both.
TDPOVariant tdpo_variant_from_string(std::string_view name);

PREFOPT_OPTION_CHOICES(TDPOVariant, kTDPO1, kTDPO2);

/// The declared options of TDPOLoss (options.h): type, name, default, meaning.
#define PREFOPT_TDPO_LOSS_OPTIONS(X)                                                                         \
  X(TDPOVariant, variant, kTDPO2,                                                                            \
    "tdpo1 or tdpo2 (the paper's main method, the official config's if_tdpo2: true).")                       \
  X(double, beta, 0.1, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(double, alpha, 0.5, "TDPO2's weight of the KL margin, finite and >= 0; ignored by TDPO1.")

/// Options of TDPOLoss and functional::tdpo_loss.
struct TDPOLossOptions {
  PREFOPT_TDPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when an input holds NaN or Inf (one host sync per input).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(TDPOLossOptions, PREFOPT_TDPO_LOSS_OPTIONS);

namespace functional {

/// TDPO loss `-logsig(beta z)` per pair.
///
/// - policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: [B] summed completion
///   log-probs; chosen_kl, rejected_kl: [B] `K(y) = sum_t mask_t KL(ref_t || policy_t)`, the per-token KL
///   summed (not averaged) over completion tokens, differentiable with respect to the policy. One floating
///   dtype and device for all six; B >= 1.
/// - TDPO1 `z = (h_c - h_r) - (K_r - K_c)`; TDPO2 `z = (h_c - h_r) - alpha (K_r - sg(K_c))`, h = p - q.
///   Only K_c is detached, and only in TDPO2.
/// - Computed in float32 (float64 for float64 input); losses/loss come back in the input dtype.
/// - chosen_rewards = beta (h_c + K_c), rejected_rewards = beta (h_r + K_r): detached; they include the KL.
/// - metrics: rewards/chosen, rewards/rejected, rewards/accuracies (strict >), rewards/margins, kl/chosen,
///   kl/rejected (means of K), kl/margin (mean of K_c - K_r, as the official code logs it), logps/chosen,
///   logps/rejected.
///
/// Example:
/// ```
/// auto out = prefopt::functional::tdpo_loss(pc, pr, rc, rr, kl_c, kl_r,
///                                            prefopt::TDPOLossOptions().variant(prefopt::kTDPO2).alpha(0.5));
/// out.loss.backward();
/// ```
LossOutput tdpo_loss(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                     const torch::Tensor& chosen_kl, const torch::Tensor& rejected_kl,
                     const TDPOLossOptions& options = {});

}  // namespace functional

/// Module form of functional::tdpo_loss; holds the options and delegates to the functional form.
///
/// Example:
/// ```
/// prefopt::TDPOLoss loss(prefopt::TDPOLossOptions().beta(0.1).alpha(0.5));
/// auto out = loss(pc, pr, rc, rr, kl_c, kl_r);
/// ```
class TDPOLossImpl : public torch::nn::Cloneable<TDPOLossImpl> {
 public:
  explicit TDPOLossImpl(TDPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_chosen_logps, const torch::Tensor& policy_rejected_logps,
                     const torch::Tensor& ref_chosen_logps, const torch::Tensor& ref_rejected_logps,
                     const torch::Tensor& chosen_kl, const torch::Tensor& rejected_kl);

  TDPOLossOptions options;
};
TORCH_MODULE(TDPOLoss);

}  // namespace prefopt
