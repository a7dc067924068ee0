// Reductions of per-token log-probs ([B, T], from sequence_logps) into the per-sequence quantities that
// some losses take: LD-DPO's length-desensitised log-probs and the chosen completions' mean token NLL.
// They read only [B, T] tensors and masks, never logits.
#pragma once

#include <utility>

#include <torch/types.h>

namespace prefopt {

/// LD-DPO (TRL's ld_alpha): p = sum_{j <= l} logp_j + alpha sum_{j > l} logp_j per sequence, with
/// l = min(L_c, L_r) the pair's shared ("public") length and j counted from the completion's first scored
/// token. Apply it to the policy's and the reference's token log-probs alike, then call dpo_loss.
///
/// - *_token_logps: [B, T_c] and [B, T_r], floating; *_mask: same shapes, bool (true = scored token, e.g.
///   labels != ignore_index). T_c and T_r may differ.
/// - alpha: in [0, 1] (1 gives the plain sums).
/// - returns (chosen [B], rejected [B]) in the token_logps dtype; differentiable.
///
/// Example:
/// ```
/// auto c = prefopt::sequence_logps(chosen_logits, chosen_labels);
/// auto r = prefopt::sequence_logps(rejected_logits, rejected_labels);
/// auto [pc, pr] = prefopt::ld_dpo_logps(c.token_logps, chosen_labels.ne(-100), r.token_logps,
///                                       rejected_labels.ne(-100), 0.5);
/// ```
std::pair<torch::Tensor, torch::Tensor> ld_dpo_logps(const torch::Tensor& chosen_token_logps,
                                                     const torch::Tensor& chosen_mask,
                                                     const torch::Tensor& rejected_token_logps,
                                                     const torch::Tensor& rejected_mask, double alpha);

/// The mean NLL over all scored tokens of a batch (TRL's nll_loss on the chosen completions, used by
/// loss_type sft and rpo_alpha): -sum(token_logps[mask]) / max(1, count(mask)). 0-dim, differentiable.
///
/// Example:
/// ```
/// auto nll = prefopt::mean_token_nll(chosen.token_logps, chosen_labels.ne(-100));
/// ```
torch::Tensor mean_token_nll(const torch::Tensor& token_logps, const torch::Tensor& mask);

}  // namespace prefopt
