// Scoring a micro-batch: collates examples of a Dataset, runs the policy (and the frozen reference model, or reads
// the precomputed reference table) and returns the typed scores a loss needs (batch_scores.h), including what
// some losses ask for: per-token KL (TDPO), WPO weights, LD-DPO's down-weighted tails, KTO's mismatched pairs. It
// never computes a loss, never steps an optimizer and never reads a file.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <torch/types.h>

#include <prefopt/model/llama.h>
#include <prefopt/train/batch_scores.h>
#include <prefopt/train/dataset.h>
#include <prefopt/train/loss_registry.h>

namespace prefopt::train {

/// How sequences are scored.
struct ScoringConfig {
  torch::Device device = torch::kCPU;
  int64_t pad_token_id = 0;
  /// Score from the final hidden states through the chunked fused-linear operator (no [B, T, V] logits), except
  /// where a loss needs logits (TDPO's KL, WPO's weights).
  bool fused_linear_logps = false;
  int64_t logps_chunk_bytes = int64_t{128} << 20;
  /// Run each micro-batch's sequences packed end to end in one row (data/packing.h) instead of padded: the same
  /// scores up to float rounding, without computing padding.
  bool packing = false;
};

/// Example:
/// ```
/// prefopt::train::BatchScorer scorer(prefopt::train::ScoringConfig{}, objective->needs());
/// auto scores = scorer.score(policy, &reference, torch::Tensor(), data, {0, 1, 2, 3});
/// auto out = objective->compute(scores);
/// ```
class BatchScorer {
 public:
  BatchScorer(ScoringConfig config, ScoringNeeds needs);

  /// Scores examples `idx` of `data`. The policy's scores carry gradients when grad mode is on; the reference's
  /// never do. With needs.reference, the reference comes from `reference_model` when it is non-null and
  /// `reference_table` is undefined or cannot serve the loss (per-token KL, KTO's pairs), else from the rows
  /// `idx` of `reference_table` (reference_table()'s layout).
  BatchScores score(LlamaForCausalLM& policy, LlamaForCausalLM* reference_model, const torch::Tensor& reference_table,
                    const Dataset& data, const std::vector<int64_t>& idx) const;

  /// The reference log-probs of every example of `data` in dataset order, computed in batches of `batch_size`
  /// without gradients: pairs [N, 2] (chosen, rejected; LD-DPO applied), ranked lists [N, Kmax]. float32, CPU.
  /// With `rows` (indices into `data`, repeats allowed), only those examples: [rows.size(), C], C as for the whole
  /// table (a data-parallel rank computes its share). An error for data whose reference cannot be tabulated
  /// (unpaired examples with KTO's in-batch pairs).
  torch::Tensor reference_table(LlamaForCausalLM& reference_model, const Dataset& data, int64_t batch_size,
                                const std::optional<std::vector<int64_t>>& rows = std::nullopt) const;

  /// Whether reference_table() can serve this loss (no per-token KL, no in-batch KL pairs).
  bool reference_tabulable() const;

 private:
  ScoringConfig config_;
  ScoringNeeds needs_;
};

}  // namespace prefopt::train
