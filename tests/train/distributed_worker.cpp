// One rank of the multi-process tests (tests/src/train/distributed_test.cpp launches several with torchrun's
// environment variables): runs a scenario over prefopt::train::ProcessGroup and prints what it saw, one
// "key value" line each, so the test checks every rank's view. Not a test by itself.
//
// Usage: prefopt_distributed_worker collectives | die_early TIMEOUT_MS
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <c10/util/Exception.h>
#include <torch/types.h>

#include <prefopt/train/distributed.h>

namespace pt = prefopt::train;

int main(int argc, char** argv) {
  const std::string scenario = argc > 1 ? argv[1] : "";
  const auto env = pt::DistributedEnv::from_environment();
  const auto timeout = std::chrono::milliseconds(argc > 2 ? std::atoll(argv[2]) : 60000);
  try {
    pt::ProcessGroup group(env, torch::kCPU, timeout);
    if (scenario == "collectives") {
      // all_reduce: ranks contribute rank + 1; the sum is n (n + 1) / 2 everywhere.
      auto t = torch::full({3}, static_cast<double>(group.rank() + 1), torch::kFloat64);
      group.all_reduce(t);
      std::printf("all_reduce %.1f %.1f %.1f\n", t[0].item<double>(), t[1].item<double>(), t[2].item<double>());
      // async all_reduce of float32, then broadcast of two tensors from rank 1.
      auto f = torch::arange(4, torch::kFloat32) * static_cast<float>(group.rank() + 1);
      auto pending = group.all_reduce_async(f);
      pending->wait();
      std::printf("all_reduce_async %.1f\n", f.sum().item<double>());
      std::vector<torch::Tensor> b{torch::full({2}, static_cast<double>(group.rank())), torch::full({1}, group.rank() * 10L)};
      group.broadcast(b, 1);
      std::printf("broadcast %.1f %lld\n", b[0][1].item<double>(), static_cast<long long>(b[1][0].item<int64_t>()));
      const auto g = group.all_gather(torch::full({2}, static_cast<int64_t>(group.rank()), torch::kLong));
      std::printf("all_gather %s\n", torch::equal(g, torch::arange(group.size()).unsqueeze(1).repeat({1, 2}))
                                          ? "ranks in order" : "WRONG");
      group.barrier();
      std::printf("rank %lld of %lld done\n", static_cast<long long>(group.rank()), static_cast<long long>(group.size()));
      return 0;
    }
    if (scenario == "die_early") {
      // The last rank leaves without a word; the others' next collective must fail within the timeout.
      if (group.rank() == group.size() - 1) std::_Exit(7);
      auto t = torch::ones({1});
      const auto start = std::chrono::steady_clock::now();
      try {
        group.all_reduce(t);
        std::printf("all_reduce completed\n");
        return 0;
      } catch (const c10::Error& e) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("error after %.1f s: %s\n", s, e.what_without_backtrace());
        return 3;
      }
    }
    std::fprintf(stderr, "unknown scenario '%s'\n", scenario.c_str());
    return 2;
  } catch (const c10::Error& e) {
    std::printf("error: %s\n", e.what_without_backtrace());
    return 4;
  }
}
