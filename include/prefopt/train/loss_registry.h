// The loss registry: maps a loss name and a string-keyed option map (as a JSON config gives them) to an
// Objective that turns one micro-batch's typed scores into a LossOutput by calling the prefopt loss. Every entry is
// built from the loss's option declaration (prefopt/losses/options.h), so its names, defaults, type checks and
// documentation come from one place. It never runs a model and never computes a score.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include <prefopt/losses/degree.h>
#include <prefopt/losses/loss_output.h>
#include <prefopt/losses/options.h>
#include <prefopt/model/llama.h>
#include <prefopt/train/batch_scores.h>
#include <prefopt/train/dataset.h>

namespace prefopt::train {

using OptionValue = prefopt::OptionValue;
/// Options of a loss by name, e.g. {{"beta", 0.1}, {"loss_type", "ipo"}}. An integer is accepted where a real
/// is expected.
using LossOptions = prefopt::OptionMap;

/// The dpo entry's options that change how the trainer scores a batch rather than the loss formula.
#define PREFOPT_DPO_SCORING_OPTIONS(X)                                                                       \
  X(bool, use_weighting, false,                                                                              \
    "WPO: weight each pair's loss by W = min(1, exp(w_c + w_r)), w the mean over completion tokens of "      \
    "log p_t - log sum_v p_v^2 (detached; needs the policy's logits; not with aot or aot_unpaired).")        \
  X(double, ld_alpha, 1.0,                                                                                   \
    "LD-DPO: tokens past the shorter response of a pair count alpha times, in (0, 1]; 1 = off.")
struct DPOScoringOptions {
  PREFOPT_DPO_SCORING_OPTIONS(PREFOPT_OPTION_FIELD)
};

/// The spo entry's options besides SPOLoss's and the DPO loss it wraps: the augmentation and the degree head.
#define PREFOPT_SPO_TRAINING_OPTIONS(X)                                                                      \
  X(int64_t, num_degrees, 4,                                                                                  \
    "K >= 2 graded variants of each chosen response (degree d removes the top d / (K - 1) of its key phrases) "   \
    "and the degree head's classes.")                                                                        \
  X(DegreePooling, pooling, kMeanPooling, "How the degree head pools the last hidden states: mean or last.")
struct SPOTrainingOptions {
  PREFOPT_SPO_TRAINING_OPTIONS(PREFOPT_OPTION_FIELD)
};

/// The tpo entry's options besides TPOLoss's: where a response's steps end.
#define PREFOPT_TPO_TRAINING_OPTIONS(X)                                                                      \
  X(std::string, step_delimiter, "\n",                                                                         \
    "Each response is cut into steps after every occurrence of this text (kept with the step it ends).")
struct TPOTrainingOptions {
  PREFOPT_TPO_TRAINING_OPTIONS(PREFOPT_OPTION_FIELD)
};

/// What a loss needs the trainer to compute besides the policy's summed log-probs.
struct ScoringNeeds {
  /// Reference log-probs (from the frozen copy or the precomputed cache).
  bool reference = false;
  /// [B] summed per-token KL(reference || policy) of both responses (TDPO): a live reference model.
  bool token_kl = false;
  /// KTO's mismatched prompt/completion pairs within the micro-batch: a live reference model.
  bool kl_pairs = false;
  /// WPO's pair weights from the policy's logits.
  bool wpo_weights = false;
  /// LD-DPO's alpha (1 = off): the pair's scores from per-token log-probs.
  double ld_alpha = 1.0;
  /// The final hidden state at each sequence's last non-pad token instead of log-probs (a reward model's score
  /// head reads it).
  bool pooled_hidden = false;
  /// SPO: K >= 2 graded variants of each chosen response (Dataset::degree_variants) scored into hidden states;
  /// 0 = none.
  int64_t degree_variants = 0;
  /// TPO: each response cut into steps after every `step_delimiter` (Dataset::step_ids), scored per step.
  bool steps = false;
  std::string step_delimiter;
};

/// A loss bound to its options, with the little state a loss keeps (BCO's running mean).
///
/// Example:
/// ```
/// auto objective = prefopt::train::make_objective("dpo", {{"beta", 0.1}, {"loss_type", "ipo"}});
/// objective->format();                        // DataFormat::Pairwise
/// prefopt::train::PairScores scores;          // policy_chosen, policy_rejected, ref_chosen, ... [B]
/// prefopt::LossOutput out = objective->compute(scores);
/// ```
class Objective {
 public:
  virtual ~Objective() = default;
  /// The registry name.
  virtual std::string name() const = 0;
  /// The data format it trains on.
  virtual DataFormat format() const = 0;
  virtual ScoringNeeds needs() const = 0;
  /// The loss and its metrics from one micro-batch's scores (an error naming the loss when they are of
  /// another shape than format()).
  virtual LossOutput compute(const BatchScores& scores) = 0;
  /// Loss state to checkpoint (name -> tensor, CPU), and its restoration. Empty for stateless losses.
  virtual std::map<std::string, torch::Tensor> state() const { return {}; }
  virtual void load_state(const std::map<std::string, torch::Tensor>& state) {}
  /// Builds what the loss trains besides the model (a reward model's score head), on the model's device and in
  /// its dtype; the trainer calls it once, before training. An error when the model does not fit the loss.
  virtual void bind(const LlamaForCausalLMImpl& model) {}
  /// The parameters bind() made, which the trainer optimises and clips with the model's (their values are part
  /// of state()).
  virtual std::vector<torch::Tensor> parameters() const { return {}; }
  /// Data parallel: how a statistic of this rank's micro-batch becomes the global batch's (the mean over the ranks,
  /// a collective every rank calls in the same order). A loss whose statistics span the batch (BCO's running mean)
  /// takes it so its result does not depend on the world size. Unset: one process.
  void set_mean_over_ranks(std::function<torch::Tensor(const torch::Tensor&)> mean) { mean_over_ranks_ = std::move(mean); }
  /// Writes the trained model as users load it: the causal LM (save_llama), or for a reward model the decoder
  /// with its score head as a LlamaForSequenceClassification folder; in `dtype` when given.
  virtual void save_model(const LlamaForCausalLMImpl& model, const std::string& directory,
                          std::optional<torch::Dtype> dtype = std::nullopt) const;

 protected:
  std::function<torch::Tensor(const torch::Tensor&)> mean_over_ranks_;
};

/// A registered loss as documentation and checks see it: its name, one line on what it is, the data format it
/// trains on, and its declared options (the loss's own, then the trainer-side ones such as dpo's
/// use_weighting).
struct LossInfo {
  std::string name;
  std::string summary;
  DataFormat format;
  std::vector<OptionSpec> options;
};

/// Every registered loss, sorted by name.
const std::vector<LossInfo>& registered_loss_infos();
/// The names make_objective accepts, sorted.
std::vector<std::string> registered_losses();
/// The option keys a loss accepts, sorted (an error for an unknown loss).
std::vector<std::string> loss_option_keys(const std::string& name);
/// The run-config documentation of every loss and option (docs/training.md's "Loss options" section, between
/// its markers), generated from the declarations.
std::string loss_options_markdown();

/// Builds the objective `name` with `options`. An unknown name or option key, a value of the wrong type or an
/// unknown choice is an error naming the loss and listing the valid ones. Names: see registered_loss_infos() or
/// docs/training.md.
std::unique_ptr<Objective> make_objective(const std::string& name, const LossOptions& options = {});

}  // namespace prefopt::train

namespace prefopt {
PREFOPT_DECLARE_OPTIONS(train::DPOScoringOptions, PREFOPT_DPO_SCORING_OPTIONS);
PREFOPT_DECLARE_OPTIONS(train::SPOTrainingOptions, PREFOPT_SPO_TRAINING_OPTIONS);
PREFOPT_DECLARE_OPTIONS(train::TPOTrainingOptions, PREFOPT_TPO_TRAINING_OPTIONS);
}  // namespace prefopt
