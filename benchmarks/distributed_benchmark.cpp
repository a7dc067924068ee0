// Seconds per DPO step of one process against a data-parallel job with the same global batch (launch this program
// under torchrun for the latter), and the fraction of the gradient all-reduce that ran behind the backward. Rank 0
// prints one line; benchmarks/distributed_table.sh alternates the two set-ups and prints the comparison. Never a
// test.
//
// Usage: prefopt_distributed_benchmark [--global_batch 8] [--steps 4] [--hidden 256] [--layers 4] [--vocab 32000]
//        [--seq 256] [--threads 0]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <prefopt/model/llama.h>
#include <prefopt/train/distributed.h>
#include <prefopt/train/trainer.h>

#include "bench_args.h"

int main(int argc, char** argv) {
  long long global_batch = 8, steps = 4, hidden = 256, layers = 4, vocab = 32000, seq = 256, threads = 0;
  if (!prefopt::bench::parse_flags(argc, argv, 1,
                                   {{"--global_batch", &global_batch}, {"--steps", &steps}, {"--hidden", &hidden},
                                    {"--layers", &layers}, {"--vocab", &vocab}, {"--seq", &seq},
                                    {"--threads", &threads}})) {
    return 2;
  }
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  namespace pt = prefopt::train;
  const auto env = pt::DistributedEnv::from_environment();
  if (global_batch % env.world_size != 0) {
    std::fprintf(stderr, "--global_batch %lld is not a multiple of the world size %lld\n", global_batch,
                 static_cast<long long>(env.world_size));
    return 2;
  }
  // The same random pairs in every process: prompt seq/4, chosen and rejected 3 seq/8 each.
  torch::manual_seed(1);
  std::vector<prefopt::data::PairExample> pairs;
  const int64_t total_steps = steps + 1;  // the first step warms up and is not timed
  for (int64_t i = 0; i < global_batch * total_steps; ++i) {
    auto draw = [&](int64_t n) {
      const torch::Tensor t = torch::randint(1, vocab, {n}, torch::kLong);
      return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
    };
    pairs.push_back({draw(seq / 4), draw(seq * 3 / 8), draw(seq * 3 / 8)});
  }
  torch::manual_seed(0);
  prefopt::LlamaForCausalLM model(prefopt::LlamaConfig()
                                      .vocab_size(vocab)
                                      .hidden_size(hidden)
                                      .intermediate_size(hidden * 8 / 3)
                                      .num_hidden_layers(layers)
                                      .num_attention_heads(std::max<int64_t>(1, hidden / 64))
                                      .num_key_value_heads(std::max<int64_t>(1, hidden / 128))
                                      .pad_token_id(0));
  auto config = pt::TrainerConfig()
                    .loss("dpo")
                    .batch_size(global_batch / env.world_size)
                    .max_steps(total_steps)
                    .learning_rate(1e-6)
                    .logging_steps(1)
                    .shuffle(false)
                    .progress(pt::ProgressMode::Silent)
                    .save_final_model(false);
  pt::Trainer trainer(config, model, pt::Dataset::from_pairs(std::move(pairs)));
  if (env.distributed()) trainer.set_process_group(std::make_shared<pt::ProcessGroup>(env, torch::kCPU));
  std::vector<std::chrono::steady_clock::time_point> marks;
  double communication = 0, hidden_part = 0, waited = 0;
  int64_t buckets = 0;
  trainer.set_log_callback([&](const pt::LogEntry& entry, bool is_eval) {
    if (is_eval) return;
    marks.push_back(std::chrono::steady_clock::now());
    if (entry.step == 1) return;
    const auto c = trainer.last_step_communication();
    communication += c.communication_seconds;
    hidden_part += c.hidden_seconds;
    waited += c.waited_seconds;
    buckets = c.buckets;
  });
  trainer.train();
  if (env.rank != 0) return 0;
  const double seconds = std::chrono::duration<double>(marks.back() - marks.front()).count() / static_cast<double>(steps);
  std::printf("world %lld: %.3f s/step, global batch %lld pairs, %d threads per process; gradient all-reduce %.3f "
              "s/step in %lld buckets, %.0f%% of it behind the backward, %.3f s/step waited\n",
              static_cast<long long>(env.world_size), seconds, global_batch, at::get_num_threads(),
              communication / static_cast<double>(steps), static_cast<long long>(buckets),
              communication > 0 ? 100.0 * hidden_part / communication : 0.0, waited / static_cast<double>(steps));
  return 0;
}
