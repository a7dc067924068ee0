// Peak memory and seconds per step of DPO training steps on a Qwen2.5-0.5B-shaped model (its config.json's shape,
// random weights), sequences of 1024 tokens (512 prompt + 512 completion), 2 pairs per step, for one training
// variant per process (peak RSS only grows within a process, so each variant needs its own):
//   full          fp32 full fine-tuning with a copied reference
//   fused         + fused_linear_logps (no [B, T, V] logits)
//   checkpointing + gradient checkpointing
//   bf16          + bf16 mixed precision
//   lora          LoRA r=16 on all linear layers, adapter-off reference, gradient checkpointing, fused scoring
//   lora_bf16     the same under bf16 mixed precision
// benchmarks/memory_table.sh runs every variant and prints the table. Never a test.
//
// Usage: prefopt_memory_benchmark VARIANT [--steps 2] [--seq 1024] [--layers 24] [--threads 0]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <prefopt/model/llama.h>
#include <prefopt/train/trainer.h>

#include "bench_args.h"

namespace {

// Qwen/Qwen2.5-0.5B's config.json shape.
prefopt::LlamaConfig qwen25_05b(int64_t layers) {
  return prefopt::LlamaConfig()
      .architecture(prefopt::LlamaArchitecture::kQwen2)
      .vocab_size(151936)
      .hidden_size(896)
      .intermediate_size(4864)
      .num_hidden_layers(layers)
      .num_attention_heads(14)
      .num_key_value_heads(2)
      .rms_norm_eps(1e-6)
      .rope_theta(1000000.0)
      .max_position_embeddings(32768)
      .tie_word_embeddings(true);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s full|fused|checkpointing|bf16|lora|lora_bf16 [--steps N] [--seq T] [--layers L] "
                 "[--threads N]\n", argv[0]);
    return 2;
  }
  const std::string variant = argv[1];
  long long steps = 2, seq = 1024, layers = 24, threads = 0;
  if (!prefopt::bench::parse_flags(argc, argv, 2,
                                   {{"--steps", &steps}, {"--seq", &seq}, {"--layers", &layers}, {"--threads", &threads}})) {
    return 2;
  }
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  namespace pt = prefopt::train;
  auto config = pt::TrainerConfig()
                    .loss("dpo")
                    .batch_size(2)
                    .max_steps(steps)
                    .learning_rate(1e-6)
                    .logging_steps(1)
                    .progress(pt::ProgressMode::Silent)
                    .save_final_model(false)
                    .shuffle(false);
  if (variant == "full") {
  } else if (variant == "fused") {
    config.fused_linear_logps(true);
  } else if (variant == "checkpointing") {
    config.fused_linear_logps(true).gradient_checkpointing(true);
  } else if (variant == "bf16") {
    config.fused_linear_logps(true).gradient_checkpointing(true).mixed_precision(pt::MixedPrecision::BF16);
  } else if (variant == "lora" || variant == "lora_bf16") {
    config.fused_linear_logps(true).gradient_checkpointing(true).lora(
        prefopt::LoraConfig().r(16).alpha(32).target_modules({"all-linear"}));
    if (variant == "lora_bf16") config.mixed_precision(pt::MixedPrecision::BF16);
  } else {
    std::fprintf(stderr, "unknown variant %s\n", variant.c_str());
    return 2;
  }

  torch::manual_seed(0);
  prefopt::LlamaForCausalLM model(qwen25_05b(layers));
  // Pairs of random token ids: prompt seq/2, chosen and rejected seq/2 each (2 pairs = 4 sequences of seq tokens).
  std::vector<prefopt::data::PairExample> pairs;
  const int64_t half = seq / 2;
  for (int64_t i = 0; i < 2 * steps; ++i) {
    auto draw = [&](int64_t n) {
      const torch::Tensor t = torch::randint(151000, {n}, torch::kLong);
      return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
    };
    pairs.push_back({draw(half), draw(half), draw(half)});
  }
  auto data = pt::Dataset::from_pairs(std::move(pairs));
  data.max_length = seq;
  const double before = prefopt::bench::peak_rss_mib();
  pt::Trainer trainer(config, model, data);
  const auto start = std::chrono::steady_clock::now();
  const auto result = trainer.train();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double loss = 0;
  for (const auto& s : result.steps) loss += s.metrics.at("loss");
  std::printf("variant %-14s layers %lld seq %lld: peak RSS %.0f MiB (model built: %.0f MiB), %.1f s/step over %lld "
              "steps, %d threads, mean loss %.4f\n",
              variant.c_str(), layers, seq, prefopt::bench::peak_rss_mib(), before,
              seconds / static_cast<double>(steps), static_cast<long long>(steps), at::get_num_threads(),
              loss / static_cast<double>(steps));
  return 0;
}
