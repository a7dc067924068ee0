// Data-parallel processes: the rank and world size a launcher (torchrun) gives a process, and the process group the
// trainer communicates through, which is c10d's own (a TCPStore rendezvous, ProcessGroupGloo for CPU tensors,
// ProcessGroupNCCL for CUDA tensors). Every collective here is a c10d collective: no home-made communication. It
// never touches a model, a loss or a file.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace prefopt::train {

/// Where this process stands in a data-parallel job, as torchrun describes it in the environment.
struct DistributedEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  /// The process's index on its machine: its CUDA device.
  int64_t local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;

  /// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (torchrun's variables). None set: one process.
  /// A malformed or inconsistent value (RANK 2 with WORLD_SIZE 2, a port out of range, WORLD_SIZE without RANK) is
  /// an error naming the variable and its value.
  static DistributedEnv from_environment();
  bool distributed() const { return world_size > 1; }
};

/// A c10d process group over every rank of the job, on one device type (Gloo for CPU, NCCL for CUDA). Collectives
/// take tensors on that device. A collective that does not complete within the timeout (a rank died or hangs)
/// raises an error naming the operation, this rank and the timeout, instead of hanging.
///
/// Example (run under `torchrun --nproc-per-node 2`):
/// ```
/// auto env = prefopt::train::DistributedEnv::from_environment();
/// prefopt::train::ProcessGroup group(env, torch::kCPU);
/// auto t = torch::ones({4}) * (group.rank() + 1);
/// group.all_reduce(t);   // every rank: [3, 3, 3, 3]
/// ```
class ProcessGroup {
 public:
  /// Joins the job: rank 0 serves the TCPStore at master_addr:master_port and every rank connects to it, then the
  /// backend for `device` is built. Waits at most `timeout` for the other ranks.
  ProcessGroup(const DistributedEnv& env, torch::Device device,
               std::chrono::milliseconds timeout = std::chrono::minutes(10));
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int64_t rank() const;
  int64_t size() const;
  torch::Device device() const;
  std::chrono::milliseconds timeout() const;

  /// A collective in flight; wait() blocks until it completes (or raises, see above). completed_at() is when it
  /// completed (known after wait()), for measuring how much of it ran behind other work.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
    virtual std::chrono::steady_clock::time_point completed_at() const = 0;
  };

  /// Sums `tensor` over the ranks, in place, without blocking: the result is there after wait().
  std::unique_ptr<Pending> all_reduce_async(torch::Tensor& tensor);
  /// Sums `tensor` over the ranks, in place.
  void all_reduce(torch::Tensor& tensor);
  /// Every rank's `tensors` become rank `root`'s, in place.
  void broadcast(std::vector<torch::Tensor>& tensors, int64_t root = 0);
  /// Every rank's `tensor` (the same shape on each), stacked: [world_size, ...] in rank order.
  torch::Tensor all_gather(const torch::Tensor& tensor);
  void barrier();

  /// Whether this build of prefopt can make process groups on `device` (Gloo for the CPU, NCCL for CUDA).
  static bool available(torch::Device device);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefopt::train
