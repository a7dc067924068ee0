// Tokens per second and peak memory of DPO training steps on a tiny Llama, padded against packed (data.packing),
// at the same real tokens per step: the same pairs in the same order, lengths drawn from a long-tailed
// distribution (prompt and completion log-normal, sequence median about 250 tokens, clipped at 2,048). One variant
// per process, since peak RSS only grows within a process; benchmarks/packing_table.sh interleaves the variants
// over several repetitions and prints the ratios. Never a test.
//
// Usage: prefopt_packing_benchmark padded|packed [--fused 0|1] [--steps 3] [--pairs 8] [--hidden 256] [--layers 4]
//        [--vocab 32000] [--threads 0] [--seed 0]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <prefopt/data/packing.h>
#include <prefopt/model/llama.h>
#include <prefopt/train/trainer.h>

#include "bench_args.h"

namespace {

// A log-normal length with the given median and shape, clipped to [lo, hi].
int64_t log_normal(std::mt19937_64& rng, double median, double sigma, int64_t lo, int64_t hi) {
  std::normal_distribution<double> normal(std::log(median), sigma);
  return std::clamp<int64_t>(static_cast<int64_t>(std::lround(std::exp(normal(rng)))), lo, hi);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s padded|packed [--fused 0|1] [--steps N] [--pairs N] [--hidden H] [--layers L] "
                 "[--vocab V] [--threads N] [--seed S]\n", argv[0]);
    return 2;
  }
  const std::string variant = argv[1];
  if (variant != "padded" && variant != "packed") {
    std::fprintf(stderr, "unknown variant %s (padded or packed)\n", variant.c_str());
    return 2;
  }
  long long fused = 0, steps = 3, pairs_per_step = 8, hidden = 256, layers = 4, vocab = 32000, threads = 0, seed = 0;
  if (!prefopt::bench::parse_flags(argc, argv, 2,
                                   {{"--fused", &fused}, {"--steps", &steps}, {"--pairs", &pairs_per_step},
                                    {"--hidden", &hidden}, {"--layers", &layers}, {"--vocab", &vocab},
                                    {"--threads", &threads}, {"--seed", &seed}})) {
    return 2;
  }
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  namespace pt = prefopt::train;

  // The same pairs for both variants: prompt ~ LN(median 80, sigma 1), completions ~ LN(median 160, sigma 1), so a
  // sequence's median is about 250 tokens with a tail to the 2,048 cap.
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  std::uniform_int_distribution<int64_t> token(1, vocab - 1);
  auto draw = [&](int64_t n) {
    std::vector<int64_t> out(static_cast<size_t>(n));
    for (auto& t : out) t = token(rng);
    return out;
  };
  const int64_t total_steps = steps + 1;  // the first step warms up and is not timed
  std::vector<prefopt::data::PairExample> pairs;
  std::vector<int64_t> step_tokens(static_cast<size_t>(total_steps), 0);
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < total_steps * pairs_per_step; ++i) {
    const int64_t prompt = log_normal(rng, 80, 1.0, 8, 1024);
    const int64_t chosen = log_normal(rng, 160, 1.0, 4, 2048 - prompt);
    const int64_t rejected = log_normal(rng, 160, 1.0, 4, 2048 - prompt);
    pairs.push_back({draw(prompt), draw(chosen), draw(rejected)});
    step_tokens[static_cast<size_t>(i / pairs_per_step)] += prefopt::data::packed_token_count(pairs.back());
    lengths.push_back(prompt + chosen);
    lengths.push_back(prompt + rejected);
  }
  std::sort(lengths.begin(), lengths.end());
  auto data = pt::Dataset::from_pairs(std::move(pairs));
  data.max_length = 2048;

  auto config = pt::TrainerConfig()
                    .loss("dpo")
                    .batch_size(pairs_per_step)
                    .max_steps(total_steps)
                    .learning_rate(1e-6)
                    .logging_steps(1)
                    .progress(pt::ProgressMode::Silent)
                    .save_final_model(false)
                    .shuffle(false)
                    .fused_linear_logps(fused != 0)
                    .packing(variant == "packed");
  torch::manual_seed(0);
  prefopt::LlamaForCausalLM model(prefopt::LlamaConfig()
                                      .vocab_size(vocab)
                                      .hidden_size(hidden)
                                      .intermediate_size(hidden * 8 / 3)
                                      .num_hidden_layers(layers)
                                      .num_attention_heads(std::max<int64_t>(1, hidden / 64))
                                      .num_key_value_heads(std::max<int64_t>(1, hidden / 128))
                                      .max_position_embeddings(2048)
                                      .pad_token_id(0));
  const double before = prefopt::bench::peak_rss_mib();
  pt::Trainer trainer(config, model, data);
  std::vector<std::chrono::steady_clock::time_point> marks;
  double first_loss = 0.0;
  trainer.set_log_callback([&](const pt::LogEntry& entry, bool is_eval) {
    if (is_eval) return;
    marks.push_back(std::chrono::steady_clock::now());
    if (entry.step == 1) first_loss = entry.metrics.at("loss");
  });
  trainer.train();
  const double seconds = std::chrono::duration<double>(marks.back() - marks.front()).count();
  int64_t timed_tokens = 0;
  for (int64_t s = 1; s < total_steps; ++s) timed_tokens += step_tokens[static_cast<size_t>(s)];
  std::printf("variant %-6s fused %lld: %.0f tokens/s, %.2f s/step, peak RSS %.0f MiB (model built: %.0f MiB), "
              "%lld real tokens/step, sequence length median %lld p90 %lld max %lld, step-1 loss %.6f, %d threads\n",
              variant.c_str(), static_cast<long long>(fused), static_cast<double>(timed_tokens) / seconds,
              seconds / static_cast<double>(steps), prefopt::bench::peak_rss_mib(), before,
              static_cast<long long>(timed_tokens / steps),
              static_cast<long long>(lengths[lengths.size() / 2]),
              static_cast<long long>(lengths[lengths.size() * 9 / 10]), static_cast<long long>(lengths.back()),
              first_loss, at::get_num_threads());
  return 0;
}
