// What every prefopt loss returns, and the batch reductions it accepts. Holds no math.
#pragma once

#include <map>
#include <string>
#include <variant>

#include <torch/enum.h>
#include <torch/types.h>

namespace prefopt {

/// Batch reduction of the per-example losses, as in LibTorch: torch::kMean (default), torch::kSum, torch::kNone.
using Reduction = std::variant<torch::enumtype::kNone, torch::enumtype::kMean, torch::enumtype::kSum>;

/// The result of a loss.
struct LossOutput {
  /// The reduced loss (0-dim for kMean/kSum; equal to `losses` for kNone). Differentiable.
  torch::Tensor loss;
  /// [B] per-example losses. Differentiable.
  torch::Tensor losses;
  /// [B] implicit rewards of the chosen and rejected responses, as the loss defines them. Detached.
  torch::Tensor chosen_rewards;
  torch::Tensor rejected_rewards;
  /// Batch metrics under TRL's names ("rewards/chosen", "rewards/accuracies", ...): 0-dim, float32, detached.
  std::map<std::string, torch::Tensor> metrics;
  /// Per-response implicit rewards of losses without a chosen/rejected split: [B, K] for the list losses,
  /// [B] for the unpaired ones (KTO). Undefined for pairwise losses. Detached.
  torch::Tensor rewards;
};

}  // namespace prefopt
