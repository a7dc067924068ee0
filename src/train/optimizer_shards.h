// ZeRO stage 1 for the data-parallel Trainer: which rank keeps AdamW's state for which parameter, sending each
// rank's freshly stepped parameters to the others, and gathering the sharded state into one AdamW as an unsharded
// run holds it (for a checkpoint) or taking a rank's part out of one (on resume). Private to src/train. Never
// computes an update itself: each rank's torch::optim::AdamW does, over the parameters it owns, so every parameter
// gets exactly the unsharded update.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <prefopt/train/distributed.h>

namespace prefopt::train::detail {

class OptimizerShards {
 public:
  /// Assigns each of `parameters` (the trainable ones, in the optimizer's order) whole to one rank: largest first,
  /// each to the rank with the fewest elements so far (the lowest on a tie), the same on every rank. An error when
  /// there are fewer parameters than ranks.
  OptimizerShards(std::vector<torch::Tensor> parameters, ProcessGroup& group);

  /// This rank's parameters, in the optimizer's order: what its AdamW steps.
  std::vector<torch::Tensor> owned() const;
  /// The rank that keeps parameter i's state.
  int64_t owner(size_t i) const { return owner_[i]; }

  /// After every rank stepped its own parameters: each rank's are sent to all, so every rank holds them all again.
  void broadcast_parameters();

  /// Every rank calls it: an AdamW over all the parameters, with `shard`'s options, holding every rank's state, on
  /// rank `root` (null on the others): what an unsharded run's optimizer holds at this point, for its checkpoint.
  std::unique_ptr<torch::optim::AdamW> consolidate(const torch::optim::AdamW& shard, int64_t root);

  /// An AdamW over all the parameters with `shard`'s options and no state (what a checkpoint is loaded into).
  std::unique_ptr<torch::optim::AdamW> whole_like(const torch::optim::AdamW& shard) const;
  /// Resume: `shard` takes the state of this rank's parameters from `whole` (whole_like's, loaded).
  void take_state(const torch::optim::AdamW& whole, torch::optim::AdamW& shard) const;

 private:
  std::vector<torch::Tensor> parameters_;
  std::vector<int64_t> owner_;
  ProcessGroup& group_;
  // The parameters sent together by one broadcast: one owner, one dtype, up to a byte cap.
  struct Bucket {
    int64_t owner;
    std::vector<size_t> members;
    int64_t numel;
  };
  std::vector<Bucket> buckets_;
};

}  // namespace prefopt::train::detail
