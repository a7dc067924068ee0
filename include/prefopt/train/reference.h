// The reference a loss compares the policy against: a frozen copy of the initial policy and, with ref_model
// "precomputed", the tables of its log-probs over the train and eval sets, computed once and cached in files keyed
// by the data's fingerprint (TRL's precompute_ref_log_probs). Never trains, never computes a loss.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <torch/types.h>

#include <prefopt/model/llama.h>
#include <prefopt/train/batch_scoring.h>
#include <prefopt/train/dataset.h>
#include <prefopt/train/distributed.h>

namespace prefopt::train {

/// Where the reference log-probs of a loss that needs a reference come from.
enum class RefModelMode {
  Copy,         ///< "copy": a frozen clone of the initial policy (requires_grad false, eval mode, no grad)
  Precomputed,  ///< "precomputed": computed once before training by that clone, cached in a file, reused on resume
};
std::string to_string(RefModelMode mode);
/// "copy" or "precomputed"; any other name is an error listing them.
RefModelMode ref_model_mode_from_string(std::string_view name);

/// Example:
/// ```
/// prefopt::train::Reference ref(prefopt::train::RefModelMode::Precomputed, /*needed=*/true, policy, torch::kCPU);
/// ref.prepare_tables(scorer, train, &eval, "out/ref_logps.pt", "out/ref_logps_eval.pt", 8);
/// auto scores = scorer.score(policy, ref.model(), ref.table(false), train, {0, 1});
/// ```
class Reference {
 public:
  /// Clones `policy` (frozen, eval mode, on `device`) when `needed`; otherwise holds nothing. With
  /// `share_policy` (a LoRA policy), the reference is `policy` itself, which scoring runs with its adapters off.
  Reference(RefModelMode mode, bool needed, const LlamaForCausalLM& policy, torch::Device device,
            bool share_policy = false);

  bool needed() const { return needed_; }
  /// Whether the reference is the policy itself (with its adapters off), so there is no separate copy to save.
  bool shares_policy() const { return shares_policy_; }
  RefModelMode mode() const { return mode_; }
  /// The frozen copy, or null when the loss needs no reference.
  LlamaForCausalLM* model() { return model_ ? &model_ : nullptr; }

  /// Precomputed mode, for a loss whose reference can be tabulated: loads each table from its file when the file
  /// holds the table of exactly this data (same fingerprint and size), else computes it with `scorer` in batches
  /// of `batch_size` and writes the file (atomically; an empty path writes none). Otherwise does nothing.
  /// Data parallel (`group` of several ranks; every rank calls it): the cache is rank 0's (the other ranks pass empty
  /// paths) and, when it holds the table, rank 0 sends it to every rank; otherwise each rank computes a 1/world share
  /// and the shares are gathered, so every rank holds the whole table.
  void prepare_tables(const BatchScorer& scorer, const Dataset& train, const Dataset* eval, const std::string& train_file,
                      const std::string& eval_file, int64_t batch_size, ProcessGroup* group = nullptr);
  /// The train (eval = false) or eval table; undefined when none was prepared.
  const torch::Tensor& table(bool eval) const { return eval ? eval_table_ : train_table_; }

  /// The default cache files for `output_dir` or an explicit `cache` path: {train, eval} ("x.pt", "x_eval.pt").
  static std::pair<std::string, std::string> cache_files(const std::string& cache, const std::string& output_dir);

 private:
  RefModelMode mode_;
  bool needed_;
  bool shares_policy_ = false;
  LlamaForCausalLM model_{nullptr};
  torch::Tensor train_table_, eval_table_;
};

}  // namespace prefopt::train
