// Scoring recipes that choose which tokens a sequence's log-prob covers: the joint, prompt-inclusive
// log-prob of DOVE (every attended token but the first), completion-only labels with the causal shift, and
// per-step means for TPO's step rewards. They build labels and reduce [B, T] values; the log-probs
// themselves come from sequence_logps (the fused token_logps kernel), so no log-softmax is materialised.
#pragma once

#include <torch/types.h>

#include "scoring.h"

namespace prefopt {

/// Shifted labels that score every attended token except the first: `labels[b, t] = input_ids[b, t + 1]`
/// when both `attention_mask[b, t]` and `attention_mask[b, t + 1]` are set, else ignore_index. So the
/// prompt tokens are scored (DOVE's joint log-prob `log pi(x) + log pi(y | x)`), and the first attended
/// token (BOS, or the first prompt token) is not: nothing predicts it. Works with left or right padding.
///
/// - input_ids: [B, T] int64, T >= 2; attention_mask: [B, T] (bool or 0/1; undefined = all attended).
/// - returns [B, T - 1] int64, to pair with `logits[:, :-1]`.
///
/// Example:
/// ```
/// auto labels = prefopt::joint_labels(input_ids, attention_mask);            // [B, T-1]
/// auto logps = prefopt::sequence_logps(logits.slice(1, 0, -1), labels).logps;  // joint log-probs [B]
/// ```
torch::Tensor joint_labels(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                           int64_t ignore_index = -100);

/// Shifted labels that score only the completion: as joint_labels, and also ignore_index where
/// `t + 1 < prompt_lengths[b]`, i.e. for the first prompt_lengths[b] positions of row b (counted from the
/// row's start, padding included).
///
/// - prompt_lengths: [B] integer, on the device of input_ids.
///
/// Example:
/// ```
/// auto labels = prefopt::completion_labels(input_ids, attention_mask, prompt_lengths);  // [B, T-1]
/// auto logps = prefopt::sequence_logps(logits.slice(1, 0, -1), labels).logps;
/// ```
torch::Tensor completion_labels(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                const torch::Tensor& prompt_lengths, int64_t ignore_index = -100);

/// DOVE's joint log-probs: sequence_logps(logits[:, :-1], joint_labels(input_ids, attention_mask)).
///
/// - logits: [B, T, V] (position t predicts token t + 1, as a causal LM emits them); input_ids,
///   attention_mask: [B, T]. options.ignore_index is the label value used for the unscored positions.
/// - returns SequenceLogps{logps [B], token_logps [B, T - 1]}.
///
/// Example:
/// ```
/// auto joint = prefopt::joint_sequence_logps(model_logits, input_ids, attention_mask);
/// joint.logps;   // log pi(x) + log pi(y | x), first token excluded
/// ```
SequenceLogps joint_sequence_logps(const torch::Tensor& logits, const torch::Tensor& input_ids,
                                   const torch::Tensor& attention_mask = {}, const SequenceLogpsOptions& options = {});

/// Per-step means of per-token values, and which steps exist.
struct StepMeans {
  /// [B, S] (or [B, S, E]) mean of the values of each step's tokens; 0 for a step with no token.
  torch::Tensor means;
  /// [B, S] bool: the step has at least one token.
  torch::Tensor mask;
};

/// Means over the tokens of each step, for TPO's step log-ratios (values = token log-probs) and step
/// embeddings (values = last hidden states).
///
/// - values: [B, T] or [B, T, E] floating; step_ids: [B, T] integer, the step of each position in [0, S)
///   or negative for a position in no step; values and step_ids must be aligned (for token log-probs from
///   shifted labels, pass the step ids of the predicted tokens, i.e. step_ids of input_ids[:, 1:]).
/// - num_steps: S >= 1. With check_inputs (default), a step id >= S is an error (one host sync); without
///   it, such positions are in no step. Differentiable with respect to values.
///
/// Example:
/// ```
/// auto steps = prefopt::step_means(token_logps, step_ids, 4);   // steps.means [B, 4], steps.mask [B, 4]
/// ```
StepMeans step_means(const torch::Tensor& values, const torch::Tensor& step_ids, int64_t num_steps,
                     bool check_inputs = true);

}  // namespace prefopt
