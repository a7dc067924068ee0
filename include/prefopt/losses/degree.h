// The preference-degree loss of SPO (LOSSES.md section 6; Li et al. 2024, arXiv 2409.17791), prefopt's
// reading since the paper's equations and code were not public: responses are augmented into K variants of
// known degree (data/keyphrases.h: degree 0 untouched, higher degrees with more key content removed), a
// degree head (a linear layer over pooled last hidden states) classifies each variant's degree, and its
// cross-entropy is added to any alignment loss: `L = L_align + lambda L_degree`.
#pragma once

#include <string>
#include <string_view>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "loss_output.h"
#include "options.h"

namespace prefopt {

/// How a sequence's last hidden states become one vector.
enum class DegreePooling {
  Mean,  ///< mean over the attended positions
  Last,  ///< the last attended position
};
inline constexpr DegreePooling kMeanPooling = DegreePooling::Mean;
inline constexpr DegreePooling kLastPooling = DegreePooling::Last;

/// "mean" or "last".
std::string to_string(DegreePooling pooling);
DegreePooling degree_pooling_from_string(std::string_view name);
PREFOPT_OPTION_CHOICES(DegreePooling, kMeanPooling, kLastPooling);

/// Options of DegreeHead.
struct DegreeHeadOptions {
  DegreeHeadOptions(int64_t hidden_size, int64_t num_degrees) : hidden_size_(hidden_size), num_degrees_(num_degrees) {}
  TORCH_ARG(int64_t, hidden_size);
  /// K >= 2 degree classes.
  TORCH_ARG(int64_t, num_degrees);
  TORCH_ARG(DegreePooling, pooling) = kMeanPooling;
  TORCH_ARG(bool, bias) = true;
};

/// Options of functional::degree_loss.
struct DegreeLossOptions {
  /// Cross-entropy label smoothing in [0, 1).
  TORCH_ARG(double, label_smoothing) = 0.0;
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error naming the first degree outside [0, K) (one host sync). Without it an out-of-range
  /// degree still fails in the gather on CPU (and trips a device assert on CUDA).
  TORCH_ARG(bool, check_inputs) = true;
};

/// The declared options of SPOLoss (options.h): type, name, default, meaning.
#define PREFOPT_SPO_LOSS_OPTIONS(X)                                                                          \
  X(double, degree_weight, 0.1,                                                                              \
    "lambda >= 0, the weight of the degree loss (prefopt's default; the paper's value was not public).")     \
  X(double, label_smoothing, 0.0, "Cross-entropy label smoothing of the degree loss, in [0, 1).")

/// Options of SPOLoss and functional::spo_loss.
struct SPOLossOptions {
  PREFOPT_SPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  /// As DegreeLossOptions::check_inputs.
  TORCH_ARG(bool, check_inputs) = true;
};
PREFOPT_DECLARE_OPTIONS(SPOLossOptions, PREFOPT_SPO_LOSS_OPTIONS);

namespace functional {

/// Pools hidden states [N, T, E] over the attended positions of attention_mask [N, T] (bool or 0/1;
/// undefined = all attended) into [N, E]. A row with no attended position pools to zeros. Differentiable.
///
/// Example:
/// ```
/// auto pooled = prefopt::functional::pool_hidden_states(hidden, mask, prefopt::kLastPooling);  // [N, E]
/// ```
torch::Tensor pool_hidden_states(const torch::Tensor& hidden_states, const torch::Tensor& attention_mask,
                                 DegreePooling pooling);

/// Cross-entropy of degree logits against the known degrees.
///
/// - logits: [N, K] floating (K >= 2); degrees: [N] integer in [0, K). Computed in float32 (float64 for
///   float64 logits); losses [N] and loss in the logits' dtype.
/// - metrics: degree/loss (mean), degree/accuracy (argmax equals the degree).
///
/// Example:
/// ```
/// auto out = prefopt::functional::degree_loss(head(hidden, mask), degrees);
/// ```
LossOutput degree_loss(const torch::Tensor& logits, const torch::Tensor& degrees, const DegreeLossOptions& options = {});

/// SPO: `L = L_align + lambda L_degree`, with L_align the output of any pairwise loss (DPO, TDPO, ...).
/// loss = align.loss + lambda * mean degree cross-entropy; losses, rewards and metrics are the alignment
/// loss's, plus degree/loss and degree/accuracy.
///
/// Example:
/// ```
/// auto align = prefopt::functional::dpo_loss(pc, pr, rc, rr);
/// auto out = prefopt::functional::spo_loss(align, head(variant_hidden, variant_mask), degrees);
/// out.loss.backward();   // reaches the policy through both terms, and the head
/// ```
LossOutput spo_loss(const LossOutput& align, const torch::Tensor& degree_logits, const torch::Tensor& degrees,
                    const SPOLossOptions& options = {});

}  // namespace functional

/// The degree head: `Linear(hidden_size, num_degrees)` over pooled last hidden states.
///
/// Example:
/// ```
/// prefopt::DegreeHead head(prefopt::DegreeHeadOptions(4096, 4).pooling(prefopt::kLastPooling));
/// torch::Tensor logits = head(hidden_states, attention_mask);   // [N, 4]
/// ```
class DegreeHeadImpl : public torch::nn::Cloneable<DegreeHeadImpl> {
 public:
  explicit DegreeHeadImpl(DegreeHeadOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  /// hidden_states: [N, T, E] with E = hidden_size; attention_mask: [N, T] or undefined. returns [N, K].
  torch::Tensor forward(const torch::Tensor& hidden_states, const torch::Tensor& attention_mask = {});

  DegreeHeadOptions options;
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(DegreeHead);

/// Module form of functional::spo_loss.
///
/// Example:
/// ```
/// prefopt::SPOLoss spo(prefopt::SPOLossOptions().degree_weight(0.1));
/// auto out = spo(dpo(pc, pr, rc, rr), head(hidden, mask), degrees);
/// ```
class SPOLossImpl : public torch::nn::Cloneable<SPOLossImpl> {
 public:
  explicit SPOLossImpl(SPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const LossOutput& align, const torch::Tensor& degree_logits, const torch::Tensor& degrees);

  SPOLossOptions options;
};
TORCH_MODULE(SPOLoss);

}  // namespace prefopt
