// One rank of the multi-process tests (tests/src/train/distributed_test.cpp launches several with torchrun's
// environment variables): runs a scenario over prefopt::train::ProcessGroup and prints what it saw, one
// "key value" line each, so the test checks every rank's view. Not a test by itself.
//
// Usage: prefopt_distributed_worker collectives | die_early TIMEOUT_MS
//        prefopt_distributed_worker train OUT_DIR STEPS BATCH_SIZE [RESUME_FROM]   (DIE_AT_STEP=k: the last rank
//        exits at step k; PAD_DATA=1 in a single process: append the examples a 2-rank run pads its epoch with;
//        BCO=1: dpo's bco_pair with its running mean and a precomputed reference; SHARD_OPTIMIZER=1: ZeRO-1)
// DEVICE=cuda: every scenario on cuda:LOCAL_RANK with NCCL instead of the CPU with Gloo.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <c10/util/Exception.h>
#include <torch/types.h>

#include <prefopt/train/distributed.h>
#include <prefopt/train/trainer.h>

namespace pt = prefopt::train;

namespace {

torch::Device device_of(const pt::DistributedEnv& env) {
  const char* d = std::getenv("DEVICE");
  if (d != nullptr && std::string(d) == "cuda") return {torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank)};
  return torch::kCPU;
}

// Seven pairs of varied lengths (not a multiple of 2 or 3 ranks), built the same way in every process.
pt::Dataset seven_pairs(bool pad_for_two_ranks) {
  std::vector<prefopt::data::PairExample> pairs;
  for (int64_t i = 0; i < 7; ++i) {
    std::vector<int64_t> prompt{257}, chosen, rejected;
    for (int64_t j = 0; j < 2 + i % 3; ++j) prompt.push_back(97 + (i * 7 + j) % 26);
    for (int64_t j = 0; j < 3 + i % 4; ++j) chosen.push_back(97 + (i * 3 + j) % 26);
    for (int64_t j = 0; j < 2 + (i + 1) % 5; ++j) rejected.push_back(65 + (i * 5 + j) % 26);
    chosen.push_back(258);
    rejected.push_back(258);
    pairs.push_back({prompt, chosen, rejected});
  }
  // Two ranks deal positions 0..6 out in turn and wrap: the second rank's fourth example is position 0 again.
  if (pad_for_two_ranks) pairs.push_back(pairs[0]);
  return pt::Dataset::from_pairs(std::move(pairs));
}

prefopt::LlamaForCausalLM tiny_model() {
  torch::manual_seed(0);
  return prefopt::LlamaForCausalLM(prefopt::LlamaConfig()
                                       .vocab_size(259)
                                       .hidden_size(16)
                                       .intermediate_size(32)
                                       .num_hidden_layers(2)
                                       .num_attention_heads(2)
                                       .num_key_value_heads(1)
                                       .pad_token_id(256));
}

// Every parameter's bytes, in order, to OUT_DIR/params_rank<R>.bin.
void write_parameters(prefopt::LlamaForCausalLM& model, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "wb");
  for (const auto& p : model->parameters()) {
    const torch::Tensor c = p.detach().contiguous().cpu();
    std::fwrite(c.data_ptr(), 1, static_cast<size_t>(c.nbytes()), f);
  }
  std::fclose(f);
}

int train(int argc, char** argv, const pt::DistributedEnv& env, std::chrono::milliseconds timeout) {
  const std::string out = argv[2];
  const int64_t steps = std::atoll(argv[3]), batch = std::atoll(argv[4]);
  const std::string resume = argc > 5 ? argv[5] : "";
  const char* pad = std::getenv("PAD_DATA");
  const char* die = std::getenv("DIE_AT_STEP");
  auto flag = [](const char* name) { return std::getenv(name) != nullptr && std::string(std::getenv(name)) == "1"; };
  const torch::Device device = device_of(env);
  auto model = tiny_model();
  auto config = pt::TrainerConfig()
                    .device(device)
                    .loss("dpo")
                    .batch_size(batch)
                    .max_steps(steps)
                    .learning_rate(1e-2)
                    .logging_steps(1)
                    .save_steps(2)
                    .shuffle(false)
                    .seed(3)
                    .progress(pt::ProgressMode::Silent)
                    .save_final_model(false)
                    .output_dir(out)
                    .resume_from(resume)
                    .shard_optimizer_state(flag("SHARD_OPTIMIZER"));
  if (flag("BCO")) {
    config.loss_options({{"loss_type", std::string("bco_pair")}, {"bco_running_mean", true}})
        .ref_model(pt::RefModelMode::Precomputed);
  }
  pt::Trainer trainer(config, model, seven_pairs(pad != nullptr && std::string(pad) == "1"));
  // On CUDA the group is made even for one process, so NCCL runs where there is a single GPU.
  if (env.distributed() || device.is_cuda()) {
    trainer.set_process_group(std::make_shared<pt::ProcessGroup>(env, device, timeout));
  }
  trainer.set_log_callback([&](const pt::LogEntry& entry, bool is_eval) {
    if (is_eval) return;
    std::printf("step %lld loss %.17g\n", static_cast<long long>(entry.step), entry.metrics.at("loss"));
    std::fflush(stdout);
    if (die != nullptr && env.rank == env.world_size - 1 && entry.step == std::atoll(die)) std::_Exit(9);
  });
  const auto start = std::chrono::steady_clock::now();
  try {
    trainer.train();
  } catch (const c10::Error& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("error after %.1f s: %s\n", s, e.what_without_backtrace());
    return 3;
  }
  write_parameters(model, out + "/params_rank" + std::to_string(env.rank) + ".bin");
  std::printf("trained\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string scenario = argc > 1 ? argv[1] : "";
  const auto env = pt::DistributedEnv::from_environment();
  if (scenario == "train") {
    const char* t = std::getenv("PG_TIMEOUT_MS");
    return train(argc, argv, env, std::chrono::milliseconds(t != nullptr ? std::atoll(t) : 60000));
  }
  const auto timeout = std::chrono::milliseconds(argc > 2 ? std::atoll(argv[2]) : 60000);
  try {
    const torch::Device device = device_of(env);
    pt::ProcessGroup group(env, device, timeout);
    if (scenario == "collectives") {
      const auto on = torch::TensorOptions().device(device);
      // all_reduce: ranks contribute rank + 1; the sum is n (n + 1) / 2 everywhere.
      auto t = torch::full({3}, static_cast<double>(group.rank() + 1), on.dtype(torch::kFloat64));
      group.all_reduce(t);
      std::printf("all_reduce %.1f %.1f %.1f\n", t[0].item<double>(), t[1].item<double>(), t[2].item<double>());
      // async all_reduce of float32, then broadcast of two tensors from the last rank.
      auto f = torch::arange(4, on.dtype(torch::kFloat32)) * static_cast<float>(group.rank() + 1);
      auto pending = group.all_reduce_async(f);
      pending->wait();
      std::printf("all_reduce_async %.1f\n", f.sum().item<double>());
      std::vector<torch::Tensor> b{torch::full({2}, static_cast<double>(group.rank()), on.dtype(torch::kFloat32)),
                                   torch::full({1}, group.rank() * 10L, on.dtype(torch::kLong))};
      group.broadcast(b, group.size() - 1);
      std::printf("broadcast %.1f %lld\n", b[0][1].item<double>(), static_cast<long long>(b[1][0].item<int64_t>()));
      const auto g = group.all_gather(torch::full({2}, static_cast<int64_t>(group.rank()), on.dtype(torch::kLong))).cpu();
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
