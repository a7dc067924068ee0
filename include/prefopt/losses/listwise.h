// Listwise and ranking preference losses (LOSSES.md section 5): Plackett-Luce (listwise DPO), the
// all-pairs baseline, LiPO-lambda, IRPO, PRO, TPO and RankList, over K responses per prompt.
//
// Shared conventions (docs/losses.md, "Listwise losses"):
// - Scores are [B, K] (policy and, where used, reference summed log-probs); `s_k = beta (p_k - q_k)`.
// - labels [B, K] are graded scores (higher is better, ListLabels::Grades, the default) or ranks (lower is
//   better, ListLabels::Ranks; turned into grades `max_valid_rank - rank`). Integer or floating.
// - mask [B, K] marks the valid responses of lists shorter than K (bool or 0/1; undefined = all valid).
//   Invalid entries are never read into a loss, a gradient or a metric, whatever they hold.
// - Ties in labels never form a pair. A list with fewer than two valid responses, or with all labels tied,
//   has no pair and its loss is 0 (K = 1 is allowed and gives 0); except that on an all-tied list PRO keeps
//   its SFT term and IRPO (not a pairwise loss) its formula value.
// - `losses` is [B] per list; `loss` reduces it over all B lists (kMean default, kSum, kNone).
// - `rewards` is [B, K] (`s_k`, or the loss's own score), detached, 0 at invalid entries;
//   chosen_rewards / rejected_rewards are the rewards of each list's best- and worst-labelled valid
//   response (first by index among ties; 0 for a list with no valid entry).
// - metrics (detached, float32): rewards/chosen, rewards/rejected, rewards/margins (means of the above),
//   rewards/accuracies (ranking accuracy of the rewards against the labels, mean over the lists where it is
//   defined), rewards/kendall_tau, rewards/ndcg (whole list), and each loss's own. A metric that is
//   defined on no list of the batch is NaN.
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

/// What the labels of a list hold.
enum class ListLabels {
  Grades,  ///< graded scores, higher is better (the default)
  Ranks,   ///< ranks, lower is better (1 = best, or 0 = best: only the order matters)
};
inline constexpr ListLabels kGrades = ListLabels::Grades;
inline constexpr ListLabels kRanks = ListLabels::Ranks;

std::string to_string(ListLabels labels);
/// "grades" or "ranks"; anything else raises an error naming both.
ListLabels list_labels_from_string(std::string_view name);

// ---------------------------------------------------------------------------------------------------------
// Plackett-Luce (listwise DPO)
// ---------------------------------------------------------------------------------------------------------

/// The declared options of each list loss (options.h): type, name, default, meaning. `labels` comes from the
/// data (grades or ranks), `reduction` and `check_finite` from the caller; they are not declared options.
#define PREFOPT_PLACKETT_LUCE_LOSS_OPTIONS(X)                                                                \
  X(double, beta, 0.1, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(int64_t, top_m, 0, "Only the first top_m positions of the label order contribute a term; 0 = all.")    \
  X(bool, reference_free, false, "q = 0: the reference scores are ignored and may be undefined.")
struct PlackettLuceLossOptions {
  PREFOPT_PLACKETT_LUCE_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(ListLabels, labels) = kGrades;
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when a valid score or label holds NaN or Inf (one host sync).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(PlackettLuceLossOptions, PREFOPT_PLACKETT_LUCE_LOSS_OPTIONS);

// ---------------------------------------------------------------------------------------------------------
// All pairs (C(K, 2) DPO pairs per list)
// ---------------------------------------------------------------------------------------------------------

#define PREFOPT_ALL_PAIRS_LOSS_OPTIONS(X)                                                                    \
  X(double, beta, 0.1, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(bool, reference_free, false, "q = 0: the reference scores are ignored and may be undefined.")
struct AllPairsLossOptions {
  PREFOPT_ALL_PAIRS_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(ListLabels, labels) = kGrades;
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when a valid score or label holds NaN or Inf (one host sync).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(AllPairsLossOptions, PREFOPT_ALL_PAIRS_LOSS_OPTIONS);

// ---------------------------------------------------------------------------------------------------------
// LiPO-lambda
// ---------------------------------------------------------------------------------------------------------

#define PREFOPT_LIPO_LAMBDA_LOSS_OPTIONS(X)                                                                  \
  X(double, beta, 0.05, "Temperature of the implicit reward, > 0 and finite.")                              \
  X(bool, lambda_weighting, true,                                                                            \
    "false: every pair weighs 1 (LiPO's pair-logistic ablation, a sum of DPO pair losses).")                 \
  X(bool, reference_free, false, "q = 0: the reference scores are ignored and may be undefined.")
struct LiPOLambdaLossOptions {
  PREFOPT_LIPO_LAMBDA_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(ListLabels, labels) = kGrades;
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when a valid score or label holds NaN or Inf (one host sync).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(LiPOLambdaLossOptions, PREFOPT_LIPO_LAMBDA_LOSS_OPTIONS);

// ---------------------------------------------------------------------------------------------------------
// IRPO
// ---------------------------------------------------------------------------------------------------------

/// IRPO's per-response weight w_k, from relevance rel_k and 1-based ideal position pos_k.
enum class IRPOWeighting {
  DCG,             ///< (2^rel - 1) / log2(1 + pos): the paper's weight (default)
  Discount,        ///< 1 / log2(1 + pos): the code's ablation 1
  LinearDiscount,  ///< (2^rel - 1) / pos: the code's ablation 2
  Uniform,         ///< 1
};
inline constexpr IRPOWeighting kDCG = IRPOWeighting::DCG;
inline constexpr IRPOWeighting kDiscount = IRPOWeighting::Discount;
inline constexpr IRPOWeighting kLinearDiscount = IRPOWeighting::LinearDiscount;
inline constexpr IRPOWeighting kUniform = IRPOWeighting::Uniform;

std::string to_string(IRPOWeighting weighting);
/// "dcg", "discount", "linear_discount" or "uniform".
IRPOWeighting irpo_weighting_from_string(std::string_view name);

PREFOPT_OPTION_CHOICES(IRPOWeighting, kDCG, kDiscount, kLinearDiscount, kUniform);

#define PREFOPT_IRPO_LOSS_OPTIONS(X)                                                                         \
  X(double, beta, 1.0, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(IRPOWeighting, weighting, kDCG, "The per-response weight: dcg (the paper), discount, linear_discount, uniform.") \
  X(bool, length_normalize, false,                                                                           \
    "Divide each log-ratio by its response's token count, as the official code's mean-token log-probs do.")  \
  X(bool, reference_free, false, "q = 0: the reference scores are ignored and may be undefined.")
struct IRPOLossOptions {
  PREFOPT_IRPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(ListLabels, labels) = kGrades;
  /// kMean (default) averages the per-list losses; kSum adds them, as the official code does.
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(IRPOLossOptions, PREFOPT_IRPO_LOSS_OPTIONS);

// ---------------------------------------------------------------------------------------------------------
// PRO
// ---------------------------------------------------------------------------------------------------------

#define PREFOPT_PRO_LOSS_OPTIONS(X)                                                                          \
  X(double, sft_weight, 0.05,                                                                                \
    "w of the SFT term w (n - 1)^2 L_sft, n the list's valid responses (the training scripts' 0.05).")      \
  X(bool, length_normalize, true, "s_k = p_k / L_k (the paper); false: s_k = p_k.")                         \
  X(bool, official_epsilon, false,                                                                           \
    "The released code's form: 1e-10 inside the log of each term's sum of exponentials (docs/losses.md).")
struct PROLossOptions {
  PREFOPT_PRO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(ListLabels, labels) = kGrades;
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when a valid score or label holds NaN or Inf (one host sync).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(PROLossOptions, PREFOPT_PRO_LOSS_OPTIONS);

// ---------------------------------------------------------------------------------------------------------
// TPO
// ---------------------------------------------------------------------------------------------------------

#define PREFOPT_TPO_LOSS_OPTIONS(X)                                                                          \
  X(double, beta, 0.1, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(bool, lambda_weighting, true, "The ranking loss's lambda weights; false: every pair weighs 1.")
struct TPOLossOptions {
  PREFOPT_TPO_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(ListLabels, labels) = kGrades;
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when a valid score or label holds NaN or Inf (one host sync).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(TPOLossOptions, PREFOPT_TPO_LOSS_OPTIONS);

// ---------------------------------------------------------------------------------------------------------
// RankList
// ---------------------------------------------------------------------------------------------------------

enum class RankListForm {
  Exact,      ///< sum over valid pairs of -logsig(s_i - s_j) (RankNet over local and non-local pairs)
  LogSumExp,  ///< one term per anchor: sum_i log(1 + sum_j exp(s_j - s_i)); never above Exact
};
inline constexpr RankListForm kExact = RankListForm::Exact;
inline constexpr RankListForm kLogSumExp = RankListForm::LogSumExp;

std::string to_string(RankListForm form);
/// "exact" or "logsumexp".
RankListForm ranklist_form_from_string(std::string_view name);

PREFOPT_OPTION_CHOICES(RankListForm, kExact, kLogSumExp);

#define PREFOPT_RANKLIST_LOSS_OPTIONS(X)                                                                     \
  X(double, beta, 0.1, "Temperature of the implicit reward, > 0 and finite.")                               \
  X(RankListForm, form, kExact, "exact: sum of -logsig(s_i - s_j) over pairs; logsumexp: one term per anchor.") \
  X(double, min_margin, 0.0, "W >= 0: a pair (i, j) counts only when y_i > y_j + W.")                       \
  X(int64_t, window, 0,                                                                                      \
    "Skip-wise window k >= 0: only pairs at most k apart in the label order (dense levels); 0 = every pair.") \
  X(bool, reference_free, false, "q = 0: the reference scores are ignored and may be undefined.")
struct RankListLossOptions {
  PREFOPT_RANKLIST_LOSS_OPTIONS(PREFOPT_OPTION_FIELD)
  TORCH_ARG(ListLabels, labels) = kGrades;
  TORCH_ARG(Reduction, reduction) = torch::kMean;
  /// Raise an error when a valid score or label holds NaN or Inf (one host sync).
  TORCH_ARG(bool, check_finite) = true;
};
PREFOPT_DECLARE_OPTIONS(RankListLossOptions, PREFOPT_RANKLIST_LOSS_OPTIONS);

namespace functional {

/// Plackett-Luce listwise DPO (DPO paper, appendix A.3), with top-m truncation:
/// `L = sum_i [LSE({s_i} u {s_j : y_j < y_i}) - s_i]` over the valid responses i among the top m of the
/// label order, which for strictly ordered labels is `-sum_{k=1}^{K-1} (s_tau(k) - LSE_{j>=k} s_tau(j))`.
/// Tied responses do not compete with each other (ties never form a pair); with K = 2 it is DPO-sigmoid.
///
/// - policy_logps, ref_logps: [B, K], one floating dtype and device (ref_logps may be undefined when
///   reference_free). labels: [B, K] grades or ranks. mask: [B, K] or undefined.
/// - Computed in float32 (float64 for float64 input); losses/loss in the input dtype.
/// - rewards = beta (p - q), detached.
///
/// Example:
/// ```
/// auto out = prefopt::functional::plackett_luce_loss(policy, ref, labels, mask,
///                                                     prefopt::PlackettLuceLossOptions().beta(0.1).top_m(2));
/// out.loss.backward();
/// ```
LossOutput plackett_luce_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                              const torch::Tensor& labels, const torch::Tensor& mask = {},
                              const PlackettLuceLossOptions& options = {});

/// The all-pairs baseline: per list, the mean over its valid pairs (y_i > y_j) of `-logsig(s_i - s_j)`.
///
/// Example:
/// ```
/// auto out = prefopt::functional::all_pairs_loss(policy, ref, labels);
/// ```
LossOutput all_pairs_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                          const torch::Tensor& labels, const torch::Tensor& mask = {},
                          const AllPairsLossOptions& options = {});

/// LiPO-lambda (Liu et al. 2024, arXiv 2402.01878), per list:
/// `sum_{y_i > y_j} Delta_ij log(1 + exp(-(s_i - s_j)))`, `Delta_ij = |G_i - G_j| |1/D(tau_i) - 1/D(tau_j)|`,
/// `G = 2^y - 1`, `D(tau) = log(1 + tau)` (natural log), tau the 1-based rank position of each valid
/// response under the current scores s (descending, ties by index). Delta is detached.
/// Extra metric: lipo/lambda_weight (mean Delta over the batch's pairs).
///
/// Example:
/// ```
/// auto out = prefopt::functional::lipo_lambda_loss(policy, ref, grades, mask);
/// ```
LossOutput lipo_lambda_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                            const torch::Tensor& labels, const torch::Tensor& mask = {},
                            const LiPOLambdaLossOptions& options = {});

/// IRPO (arXiv 2504.15477), per list of n valid responses:
/// `-(1/n) sum_k w_k logsig(-A_k)`, `A_k = log((1/(n-1)) sum_{j != k} exp(beta (h_j - h_k)))`,
/// w_k from `weighting` with rel_k the grade and pos_k the 1-based position in the ideal (label-sorted)
/// order, tied responses sharing the best position (1 + the number of strictly better ones). IRPO compares
/// each response with the mean of all others, so ties are not pairs to skip: an all-tied list is not 0 unless
/// its gains are (its loss pulls the scores together). A list with n < 2 has loss 0.
///
/// - lengths: [B, K] token counts (any real dtype), needed only with length_normalize; may be undefined.
///
/// Example:
/// ```
/// auto out = prefopt::functional::irpo_loss(policy, ref, relevance, mask, {},
///                                           prefopt::IRPOLossOptions().reduction(torch::kSum));
/// ```
LossOutput irpo_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                     const torch::Tensor& mask = {}, const torch::Tensor& lengths = {},
                     const IRPOLossOptions& options = {});

/// PRO (Song et al. 2024, arXiv 2306.17492), no reference model. s_k = p_k / L_k. Per list, for each
/// valid response k with a strictly worse one: `D_ki = r_k - r_i` over the worse i, `D*_k = max_i D_ki`,
/// `L_k = LSE({s_k D*_k} u {s_i D_ki}) - s_k D*_k` (a log-sum-exp, never raw exponentials);
/// loss = `sum_k L_k + w (n - 1)^2 (-p_best)`, p_best the summed log-prob of the best response.
/// Tied responses are left out of each other's terms (see docs/losses.md).
/// Extra metrics: pro/rank_loss, pro/sft_loss (batch means).
///
/// - policy_logps: [B, K] summed completion log-probs; lengths: [B, K] token counts (clamped to >= 1),
///   may be undefined without length_normalize; labels: the rewards r (grades) or ranks; mask.
/// - rewards = s (the length-normalised log-probs), detached.
///
/// Example:
/// ```
/// auto out = prefopt::functional::pro_loss(policy_logps, lengths, rewards, mask);
/// ```
LossOutput pro_loss(const torch::Tensor& policy_logps, const torch::Tensor& lengths, const torch::Tensor& labels,
                    const torch::Tensor& mask = {}, const PROLossOptions& options = {});

/// TPO's adaptive step weights (Liao et al. 2024, arXiv 2410.12854): `w_{k,s} = 1 + cos(e_{k,s}, e_{0,s})`
/// with e the mean last hidden state of step s and response 0 the list's best-labelled valid response
/// (first by index among ties). A step that the best response lacks gets weight 1. Detached.
///
/// - step_embeddings: [B, K, S, E] floating; step_mask: [B, K, S] (undefined = all steps valid);
///   labels, mask: [B, K] as for the losses. returns [B, K, S] in float32 (float64 for float64).
///
/// Example:
/// ```
/// auto w = prefopt::functional::tpo_step_weights(step_hidden /*[B,K,S,E]*/, step_mask, labels);  // [B, K, S]
/// ```
torch::Tensor tpo_step_weights(const torch::Tensor& step_embeddings, const torch::Tensor& step_mask,
                               const torch::Tensor& labels, const torch::Tensor& mask = {},
                               ListLabels label_kind = kGrades);

/// TPO's preference-list ranking loss: `R_k = sum_s w_{k,s} h_{k,s} / sum_s w_{k,s}` over the valid steps
/// of response k (h the step's mean-token log-ratio), then the LiPO-lambda loss over `beta R_k`. The loss
/// is minimised (the released code wraps it in `-logsig(beta L)`, which maximises it: not reproduced).
///
/// - policy_step_logps, ref_step_logps: [B, K, S] mean token log-probs of each step; step_mask: [B, K, S]
///   (undefined = all valid); step_weights: [B, K, S] from tpo_step_weights or precomputed (undefined =
///   all 1); labels, mask: [B, K]. A response with no valid step has R = 0.
/// - rewards = beta R, detached.
///
/// Example:
/// ```
/// auto w = prefopt::functional::tpo_step_weights(embeddings, step_mask, labels);
/// auto out = prefopt::functional::tpo_loss(policy_steps, ref_steps, step_mask, w, labels);
/// ```
LossOutput tpo_loss(const torch::Tensor& policy_step_logps, const torch::Tensor& ref_step_logps,
                    const torch::Tensor& step_mask, const torch::Tensor& step_weights, const torch::Tensor& labels,
                    const torch::Tensor& mask = {}, const TPOLossOptions& options = {});

/// RankList (Naini, Diaz, Busso, arXiv 2508.09826), prefopt's reading of its abstract (the paper's
/// equations were not public): per list, with pairs y_i > y_j + W inside the skip-wise window,
/// Exact `sum -logsig(s_i - s_j)`, or LogSumExp `sum_i log(1 + sum_j exp(s_j - s_i))`.
///
/// Example:
/// ```
/// auto out = prefopt::functional::ranklist_loss(policy, ref, labels, mask,
///     prefopt::RankListLossOptions().form(prefopt::kLogSumExp).min_margin(0.5).window(1));
/// ```
LossOutput ranklist_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                         const torch::Tensor& mask = {}, const RankListLossOptions& options = {});

}  // namespace functional

/// Module form of functional::plackett_luce_loss.
///
/// Example:
/// ```
/// prefopt::PlackettLuceLoss loss(prefopt::PlackettLuceLossOptions().beta(0.1));
/// auto out = loss(policy_logps, ref_logps, labels, mask);
/// ```
class PlackettLuceLossImpl : public torch::nn::Cloneable<PlackettLuceLossImpl> {
 public:
  explicit PlackettLuceLossImpl(PlackettLuceLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                     const torch::Tensor& mask = {});
  PlackettLuceLossOptions options;
};
TORCH_MODULE(PlackettLuceLoss);

/// Module form of functional::all_pairs_loss.
///
/// Example:
/// ```
/// prefopt::AllPairsLoss loss(prefopt::AllPairsLossOptions().beta(0.1));
/// auto out = loss(policy_logps, ref_logps, labels, mask);
/// ```
class AllPairsLossImpl : public torch::nn::Cloneable<AllPairsLossImpl> {
 public:
  explicit AllPairsLossImpl(AllPairsLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                     const torch::Tensor& mask = {});
  AllPairsLossOptions options;
};
TORCH_MODULE(AllPairsLoss);

/// Module form of functional::lipo_lambda_loss.
///
/// Example:
/// ```
/// prefopt::LiPOLambdaLoss loss(prefopt::LiPOLambdaLossOptions().beta(0.05));
/// auto out = loss(policy_logps, ref_logps, labels, mask);
/// ```
class LiPOLambdaLossImpl : public torch::nn::Cloneable<LiPOLambdaLossImpl> {
 public:
  explicit LiPOLambdaLossImpl(LiPOLambdaLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                     const torch::Tensor& mask = {});
  LiPOLambdaLossOptions options;
};
TORCH_MODULE(LiPOLambdaLoss);

/// Module form of functional::irpo_loss.
///
/// Example:
/// ```
/// prefopt::IRPOLoss loss(prefopt::IRPOLossOptions().weighting(prefopt::kDCG));
/// auto out = loss(policy_logps, ref_logps, labels, mask);
/// ```
class IRPOLossImpl : public torch::nn::Cloneable<IRPOLossImpl> {
 public:
  explicit IRPOLossImpl(IRPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                     const torch::Tensor& mask = {}, const torch::Tensor& lengths = {});
  IRPOLossOptions options;
};
TORCH_MODULE(IRPOLoss);

/// Module form of functional::pro_loss.
///
/// Example:
/// ```
/// prefopt::PROLoss loss(prefopt::PROLossOptions().sft_weight(0.05));
/// auto out = loss(policy_logps, lengths, rewards, mask);
/// ```
class PROLossImpl : public torch::nn::Cloneable<PROLossImpl> {
 public:
  explicit PROLossImpl(PROLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_logps, const torch::Tensor& lengths, const torch::Tensor& labels,
                     const torch::Tensor& mask = {});
  PROLossOptions options;
};
TORCH_MODULE(PROLoss);

/// Module form of functional::tpo_loss.
///
/// Example:
/// ```
/// prefopt::TPOLoss loss(prefopt::TPOLossOptions().beta(0.1));
/// auto out = loss(policy_step_logps, ref_step_logps, step_mask, step_weights, labels, mask);
/// ```
class TPOLossImpl : public torch::nn::Cloneable<TPOLossImpl> {
 public:
  explicit TPOLossImpl(TPOLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_step_logps, const torch::Tensor& ref_step_logps,
                     const torch::Tensor& step_mask, const torch::Tensor& step_weights, const torch::Tensor& labels,
                     const torch::Tensor& mask = {});
  TPOLossOptions options;
};
TORCH_MODULE(TPOLoss);

/// Module form of functional::ranklist_loss.
///
/// Example:
/// ```
/// prefopt::RankListLoss loss(prefopt::RankListLossOptions().form(prefopt::kLogSumExp).window(1));
/// auto out = loss(policy_logps, ref_logps, labels, mask);
/// ```
class RankListLossImpl : public torch::nn::Cloneable<RankListLossImpl> {
 public:
  explicit RankListLossImpl(RankListLossOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  LossOutput forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                     const torch::Tensor& mask = {});
  RankListLossOptions options;
};
TORCH_MODULE(RankListLoss);

}  // namespace prefopt
