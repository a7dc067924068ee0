// The process group of a data-parallel job over c10d: torchrun's environment variables, a TCPStore rendezvous
// (rank 0 serves it), and c10d's ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA) behind a small interface whose
// collectives turn c10d's failures and timeouts into errors naming the operation and the rank. Never a collective
// of its own; never touches a model.
//
// Gloo's headers: LibTorch ships c10d's headers, which include <gloo/...>, but not Gloo's own; the build takes them
// from Debian's libgloo-dev (PREFOPT_HAVE_GLOO). The Gloo code that runs is LibTorch's: this file only names Gloo's
// transport device type through the shared pointers c10d's API passes around and calls c10d's exported functions,
// so no Gloo struct layout or inline Gloo code of the older headers is compiled into prefopt (docs/training.md,
// "Several processes", on the limits; tests/src/train/distributed_test.cpp runs every collective used here).
#include <prefopt/train/distributed.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <exception>
#include <string>

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#if defined(PREFOPT_HAVE_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(PREFOPT_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace prefopt::train {

namespace {

// An integer environment variable, or `fallback` when unset; a malformed value is an error naming it.
int64_t env_integer(const char* name, int64_t fallback, bool* was_set = nullptr) {
  const char* raw = std::getenv(name);
  if (was_set) *was_set = raw != nullptr && *raw != '\0';
  if (raw == nullptr || *raw == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(raw, &end, 10);
  TORCH_CHECK(errno == 0 && end != raw && *end == '\0', "environment variable ", name,
              ": expected an integer, got \"", raw, "\"");
  return static_cast<int64_t>(value);
}

std::string seconds(std::chrono::milliseconds t) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g s", static_cast<double>(t.count()) / 1000.0);
  return text;
}

// c10d's message without the C++ backtrace c10::Error carries.
std::string message_of(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
  return e.what();
}

}  // namespace

DistributedEnv DistributedEnv::from_environment() {
  DistributedEnv env;
  bool has_world = false, has_rank = false;
  env.world_size = env_integer("WORLD_SIZE", 1, &has_world);
  env.rank = env_integer("RANK", 0, &has_rank);
  env.local_rank = env_integer("LOCAL_RANK", env.rank);
  env.master_port = env_integer("MASTER_PORT", env.master_port);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') env.master_addr = addr;
  TORCH_CHECK(env.world_size >= 1, "environment variable WORLD_SIZE: expected an integer >= 1, got ", env.world_size);
  TORCH_CHECK(!(has_world && env.world_size > 1 && !has_rank),
              "environment variable RANK: not set, but WORLD_SIZE is ", env.world_size,
              " (launch with torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)");
  TORCH_CHECK(env.rank >= 0 && env.rank < env.world_size, "environment variable RANK: expected 0 <= RANK < WORLD_SIZE = ",
              env.world_size, ", got ", env.rank);
  TORCH_CHECK(env.local_rank >= 0, "environment variable LOCAL_RANK: expected an integer >= 0, got ", env.local_rank);
  TORCH_CHECK(env.master_port > 0 && env.master_port < 65536,
              "environment variable MASTER_PORT: expected a port in [1, 65535], got ", env.master_port);
  return env;
}

struct ProcessGroup::Impl {
  int64_t rank = 0, size = 1;
  torch::Device device = torch::kCPU;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;

  // Waits for `work`, turning c10d's error (a timeout, a peer that closed its connection) into one naming the
  // operation and this rank.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* op) const {
    try {
      work->wait(timeout);
    } catch (const std::exception& e) {
      TORCH_CHECK(false, "process group: ", op, " failed on rank ", rank, " of ", size, ": ", message_of(e),
                  " (another rank failed, or did not reach this collective within the timeout of ", seconds(timeout),
                  ")");
    }
  }
};

namespace {

class PendingWork : public ProcessGroup::Pending {
 public:
  PendingWork(c10::intrusive_ptr<c10d::Work> work, std::function<void(const c10::intrusive_ptr<c10d::Work>&)> waiter)
      : work_(std::move(work)), waiter_(std::move(waiter)), done_(std::make_shared<std::atomic<int64_t>>(0)) {
    // The backend completes the work's future on its own thread: that is when the collective finished.
    auto done = done_;
    work_->getFuture()->addCallback([done](c10::ivalue::Future&) {
      done->store(std::chrono::steady_clock::now().time_since_epoch().count());
    });
  }
  void wait() override {
    if (work_) waiter_(work_);
    work_.reset();
    if (done_->load() == 0) done_->store(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  std::chrono::steady_clock::time_point completed_at() const override {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(done_->load()));
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::function<void(const c10::intrusive_ptr<c10d::Work>&)> waiter_;
  std::shared_ptr<std::atomic<int64_t>> done_;
};

}  // namespace

bool ProcessGroup::available(torch::Device device) {
#if defined(PREFOPT_HAVE_GLOO)
  if (device.is_cpu()) return true;
#endif
#if defined(PREFOPT_HAVE_NCCL)
  if (device.is_cuda()) return true;
#endif
  return false;
}

ProcessGroup::ProcessGroup(const DistributedEnv& env, torch::Device device, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  TORCH_CHECK(env.world_size >= 1 && env.rank >= 0 && env.rank < env.world_size, "process group: rank ", env.rank,
              " is not in [0, world size ", env.world_size, ")");
  TORCH_CHECK(timeout.count() > 0, "process group: the timeout must be > 0");
  TORCH_CHECK(available(device), "process group: this build of prefopt has no c10d backend for ", device,
              device.is_cpu() ? " (Gloo's headers were not found at build time: install libgloo-dev and rebuild)"
                              : " (NCCL's headers were not found at build time, or CUDA is off)");
  impl_->rank = env.rank;
  impl_->size = env.world_size;
  impl_->device = device;
  impl_->timeout = timeout;
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    // torchrun's agent already serves a store at MASTER_ADDR:MASTER_PORT and says so: every rank is then a client.
    const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    options.isServer = env.rank == 0 && !(agent_store != nullptr && std::string(agent_store) == "True");
    options.numWorkers = static_cast<size_t>(env.world_size);
    options.waitWorkers = true;
    options.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "process group: rank ", env.rank, " of ", env.world_size, " could not meet the others at ",
                env.master_addr, ":", env.master_port, " (MASTER_ADDR:MASTER_PORT) within ", seconds(timeout), ": ",
                message_of(e));
  }
  try {
#if defined(PREFOPT_HAVE_GLOO)
    if (device.is_cpu()) {
      auto options = c10d::ProcessGroupGloo::Options::create();
      options->timeout = timeout;
      // GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch; otherwise the host name's address.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      options->devices.push_back(ifname != nullptr && *ifname != '\0'
                                     ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(env.rank),
                                                                   static_cast<int>(env.world_size), options);
    }
#endif
#if defined(PREFOPT_HAVE_NCCL)
    if (device.is_cuda()) {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, static_cast<int>(env.rank),
                                                                   static_cast<int>(env.world_size), options);
    }
#endif
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "process group: rank ", env.rank, " of ", env.world_size, " could not build its ",
                device.is_cpu() ? "Gloo" : "NCCL", " backend: ", message_of(e));
  }
}

ProcessGroup::~ProcessGroup() = default;

int64_t ProcessGroup::rank() const { return impl_->rank; }
int64_t ProcessGroup::size() const { return impl_->size; }
torch::Device ProcessGroup::device() const { return impl_->device; }
std::chrono::milliseconds ProcessGroup::timeout() const { return impl_->timeout; }

std::unique_ptr<ProcessGroup::Pending> ProcessGroup::all_reduce_async(torch::Tensor& tensor) {
  std::vector<at::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.timeout = impl_->timeout;
  auto work = impl_->backend->allreduce(tensors, options);
  const Impl* impl = impl_.get();
  return std::make_unique<PendingWork>(std::move(work),
                                       [impl](const c10::intrusive_ptr<c10d::Work>& w) { impl->wait(w, "all_reduce"); });
}

void ProcessGroup::all_reduce(torch::Tensor& tensor) { all_reduce_async(tensor)->wait(); }

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int64_t root) {
  TORCH_CHECK(root >= 0 && root < impl_->size, "process group: broadcast root ", root, " is not a rank");
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.timeout = impl_->timeout;
    impl_->wait(impl_->backend->broadcast(one, options), "broadcast");
  }
}

torch::Tensor ProcessGroup::all_gather(const torch::Tensor& tensor) {
  const torch::Tensor input = tensor.contiguous();
  std::vector<at::Tensor> inputs{input};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int64_t r = 0; r < impl_->size; ++r) outputs[0].push_back(torch::empty_like(input));
  c10d::AllgatherOptions options;
  options.timeout = impl_->timeout;
  impl_->wait(impl_->backend->allgather(outputs, inputs, options), "all_gather");
  return torch::stack(outputs[0]);
}

void ProcessGroup::barrier() {
  c10d::BarrierOptions options;
  options.timeout = impl_->timeout;
  if (impl_->device.is_cuda()) options.device_ids = {impl_->device.index()};
  impl_->wait(impl_->backend->barrier(options), "barrier");
}

}  // namespace prefopt::train
