// The typed scores of one micro-batch, as the trainer's scoring hands them to a loss: one struct per data shape
// (pairs, ranked lists, unpaired examples, completions, joint pairs), so a loss reads named fields of the shape it trains on
// and never a bag of optional fields. Holds tensors only: never runs a model and never computes a loss.
#pragma once

#include <variant>

#include <torch/types.h>

namespace prefopt::train {

/// Pairs: [B] summed completion log-probs of the chosen and rejected responses under the policy (with gradient)
/// and the reference (detached; undefined when the loss needs no reference), [B] completion lengths (float32),
/// the chosen responses' 0-dim mean token NLL (with gradient), and what some losses ask for: [B] summed
/// per-token KL(reference || policy) (TDPO; chosen_kl with gradient), [B] WPO pair weights (detached), and for
/// a reward model the [B, H] final hidden states at each sequence's last non-pad token (with gradient; the
/// log-probs are then not computed) and the data's [B] margins and magnitudes (float32, when given).
struct PairScores {
  torch::Tensor policy_chosen, policy_rejected, ref_chosen, ref_rejected;
  torch::Tensor chosen_lengths, rejected_lengths;
  torch::Tensor chosen_nll;
  torch::Tensor chosen_kl, rejected_kl;
  torch::Tensor weights;
  torch::Tensor chosen_hidden, rejected_hidden;
  torch::Tensor margins, magnitudes;
  /// SPO: the policy's final hidden states [B * K, T, H] (with gradient) and attention mask [B * K, T] of the K
  /// graded variants of each chosen response (pair-major), and their degrees [B * K] int64 (0..K-1).
  torch::Tensor variant_hidden, variant_mask, degrees;
};

/// Joint pairs (DOVE): [B] joint log-probs log pi(x) + log pi(y | x) of the chosen (prompt, response) and of the
/// rejected one, under the policy (with gradient) and the reference (detached).
struct JointScores {
  torch::Tensor policy_chosen, policy_rejected, ref_chosen, ref_rejected;
};

/// Ranked lists: [B, K] summed log-probs (policy with gradient; reference detached or undefined), [B, K]
/// lengths (float32), labels (float32: grades, or ranks when labels_are_ranks) and the validity mask (bool).
struct ListScores {
  torch::Tensor policy, ref, lengths, labels, mask;
  bool labels_are_ranks = false;
  /// TPO: [B, K, S] mean token log-probs of each step of each response under the policy (with gradient) and the
  /// reference (detached), the [B, K, S] bool step mask, and the policy's [B, K, S, H] mean last hidden state of
  /// each step (detached; TPO's step weights compare them).
  torch::Tensor policy_steps, ref_steps, step_mask, step_embeddings;
};

/// Unpaired (KTO) examples: [B] log-probs (policy with gradient), bool labels (true = desirable), and the [B]
/// log-probs of the mismatched pairs of the same micro-batch (prompt i with completion i - 1 mod B), detached.
/// Data parallel: `kl` is the 0-dim mean of policy_kl - ref_kl over every rank's micro-batch (KTO's KL baseline,
/// all-reduced as TRL gathers it), which the loss then takes instead of this rank's own mean; undefined otherwise.
struct UnpairedScores {
  torch::Tensor policy, ref, desirable;
  torch::Tensor policy_kl, ref_kl;
  torch::Tensor kl;
};

/// Completions (SFT): [B] summed log-probs and lengths, and the 0-dim mean token NLL over the batch (with
/// gradient).
struct CompletionScores {
  torch::Tensor policy, lengths, nll;
};

/// The scores of one micro-batch: which alternative is set follows the data format.
using BatchScores = std::variant<PairScores, ListScores, UnpairedScores, CompletionScores, JointScores>;

}  // namespace prefopt::train
