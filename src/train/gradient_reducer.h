// Data-parallel gradient averaging: the trainable parameters' gradients all-reduced in buckets over a process group,
// each bucket started from autograd's post-accumulate-grad hooks as soon as all its gradients are ready, so the
// communication overlaps the rest of the backward (the scheme of c10d's DDP reducer). Private to src/train; it
// never changes a gradient's value except by averaging it over the ranks, and never steps an optimizer.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/types.h>

#include <prefopt/train/distributed.h>

namespace prefopt::train::detail {

class GradientReducer {
 public:
  /// params: the tensors the optimizer trains (leaves that require grad), on the group's device. Buckets hold
  /// about bucket_bytes of gradients each, in the reverse of `params`' order (the order a backward produces them).
  GradientReducer(std::vector<torch::Tensor> params, ProcessGroup& group, int64_t bucket_bytes = int64_t{25} << 20);
  /// Removes the hooks.
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Whether the next backward communicates: false on the micro-batches whose gradients only accumulate
  /// (no_sync), true on an optimizer step's last one.
  void set_sync(bool sync);

  /// After the synchronising backward: starts the buckets no hook started (parameters that got no gradient in
  /// this step take part with zeros), waits for all, and leaves every parameter's gradient the mean over the
  /// ranks. Buckets are always started in the same order on every rank, whatever order the hooks fire in.
  void finish();

  /// Of the last finish(): seconds some bucket's all-reduce was in flight (the union of their spans), the part of
  /// it before the backward ended (hidden behind computation), and seconds finish() waited.
  double communication_seconds() const { return communication_seconds_; }
  double hidden_seconds() const { return hidden_seconds_; }
  double waited_seconds() const { return waited_seconds_; }
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    int64_t ready = 0;
    torch::Tensor flat;
    std::unique_ptr<ProcessGroup::Pending> pending;
    std::chrono::steady_clock::time_point launched;
  };
  void on_ready(size_t param);
  void launch_ready_buckets();
  void launch(Bucket& bucket);

  std::vector<torch::Tensor> params_;
  std::vector<size_t> bucket_of_;  // param index -> bucket index
  std::vector<Bucket> buckets_;
  ProcessGroup& group_;
  bool sync_ = true;
  size_t next_bucket_ = 0;
  double communication_seconds_ = 0, hidden_seconds_ = 0, waited_seconds_ = 0;
};

}  // namespace prefopt::train::detail
