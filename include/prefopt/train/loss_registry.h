// The loss registry: maps a loss name and a string-keyed option map (as a JSON config gives them) to an
// Objective that turns the Trainer's per-sequence scores into a LossOutput by calling the prefopt loss. It
// validates names, option keys and option types up front; it never runs a model and never computes a score.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <torch/types.h>

#include <prefopt/losses/loss_output.h>
#include <prefopt/train/dataset.h>

namespace prefopt::train {

/// One option value: a bool, an integer, a real or a string. A class rather than a bare std::variant so that a
/// string literal is a string, not a bool.
class OptionValue {
 public:
  OptionValue(bool v) : value(v) {}
  OptionValue(int v) : value(static_cast<int64_t>(v)) {}
  OptionValue(long v) : value(static_cast<int64_t>(v)) {}
  OptionValue(long long v) : value(static_cast<int64_t>(v)) {}
  OptionValue(double v) : value(v) {}
  OptionValue(const char* v) : value(std::string(v)) {}
  OptionValue(std::string v) : value(std::move(v)) {}
  /// "bool", "integer", "number" or "string".
  std::string type_name() const;
  std::variant<bool, int64_t, double, std::string> value;
};

/// Options of a loss by name, e.g. {{"beta", 0.1}, {"loss_type", "ipo"}}. An integer is accepted where a real
/// is expected.
using LossOptions = std::map<std::string, OptionValue>;

/// The scores an Objective needs, computed by the Trainer. Which fields are set depends on the data format and
/// on Objective's requirements; an Objective checks the ones it reads.
struct ObjectiveInputs {
  // Pairs (and SFT on completions, which uses the chosen_* fields only): [B] summed completion log-probs,
  // [B] completion lengths (float), 0-dim mean token NLL of the chosen completions, [B] summed per-token
  // KL(reference || policy) for TDPO.
  torch::Tensor policy_chosen, policy_rejected, ref_chosen, ref_rejected;
  torch::Tensor chosen_lengths, rejected_lengths;
  torch::Tensor chosen_nll;
  torch::Tensor chosen_kl, rejected_kl;
  // Lists: [B, K] summed log-probs, lengths, labels (float64) and the validity mask (bool).
  torch::Tensor policy_lists, ref_lists, list_lengths, list_labels, list_mask;
  bool list_labels_are_ranks = false;
  // Unpaired (KTO): [B] log-probs and bool labels; [B] log-probs of the mismatched KL pairs.
  torch::Tensor policy, ref, desirable, policy_kl, ref_kl;
};

/// A loss bound to its options, with the little state a loss keeps (BCO's running mean).
///
/// Example:
/// ```
/// auto objective = prefopt::train::make_objective("dpo", {{"beta", 0.1}, {"loss_type", "ipo"}});
/// objective->accepts(prefopt::train::DataFormat::Pairwise);   // true
/// prefopt::train::ObjectiveInputs in;  // policy_chosen, policy_rejected, ref_chosen, ref_rejected, lengths...
/// prefopt::LossOutput out = objective->compute(in);
/// ```
class Objective {
 public:
  virtual ~Objective() = default;
  /// The registry name.
  virtual std::string name() const = 0;
  /// Whether compute reads reference log-probs (ref_* fields).
  virtual bool needs_reference() const = 0;
  /// Whether compute reads chosen_kl / rejected_kl (per-token KL against the reference model's logits, so the
  /// reference must be a live model: "precomputed" is refused for these losses).
  virtual bool needs_token_kl() const { return false; }
  /// Whether compute reads policy_kl / ref_kl (KTO's mismatched pairs).
  virtual bool needs_kl_pairs() const { return false; }
  /// Whether this loss trains on data of `format`.
  virtual bool accepts(DataFormat format) const = 0;
  /// The loss and its metrics. The inputs are those of one micro-batch.
  virtual LossOutput compute(const ObjectiveInputs& inputs) = 0;
  /// Loss state to checkpoint (name -> tensor, CPU), and its restoration. Empty for stateless losses.
  virtual std::map<std::string, torch::Tensor> state() const { return {}; }
  virtual void load_state(const std::map<std::string, torch::Tensor>& state) {}
};

/// The names make_objective accepts, sorted.
std::vector<std::string> registered_losses();
/// The option keys a loss accepts, sorted (an error for an unknown loss).
std::vector<std::string> loss_option_keys(const std::string& name);

/// Builds the objective `name` with `options`. Registered names and their options (the Options struct of the
/// loss they wrap, same names and defaults):
/// - "sft": mean token NLL of the completions (or of pairs' chosen responses). No options.
/// - "dpo": DPOLoss. loss_type ("sigmoid", "hinge", "ipo", ..., "sft"), beta, label_smoothing, f_divergence,
///   alpha_divergence_coef, discopop_tau, bco_running_mean, rpo_alpha, reference_free.
/// - "simpo": beta, gamma, label_smoothing. "cpo": loss_type, beta, label_smoothing, cpo_alpha, simpo_gamma,
///   alpha. "orpo": beta. "tdpo": variant ("tdpo1", "tdpo2"), beta, alpha.
/// - "kto": loss_type ("kto", "apo_zero_unpaired"), beta, desirable_weight, undesirable_weight.
/// - lists: "pro": sft_weight, length_normalize. "lipo_lambda": beta, lambda_weighting, reference_free.
///   "plackett_luce": beta, top_m, reference_free. "all_pairs": beta, reference_free.
/// An unknown name or option key, or a value of the wrong type, is an error listing the valid ones.
std::unique_ptr<Objective> make_objective(const std::string& name, const LossOptions& options = {});

}  // namespace prefopt::train
