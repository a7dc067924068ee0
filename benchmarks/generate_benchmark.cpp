// Tokens per second of prefopt::generate with the KV cache against the full re-run of every step, on the same
// random model and prompts, interleaved (cache, no cache, cache, ...) so a noisy machine slows both alike; the
// greedy ids of the two are checked identical before anything is reported. Never a test.
//
// Usage: prefopt_generate_benchmark [--hidden 512] [--layers 8] [--vocab 32000] [--batch 4] [--prompt 64]
//                                   [--new 128] [--repeats 3] [--threads 0]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <prefopt/model/generate.h>
#include <prefopt/model/llama.h>

namespace {

struct Args {
  int64_t hidden = 512, layers = 8, vocab = 32000, batch = 4, prompt = 64, new_tokens = 128, repeats = 3, threads = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const int64_t value = std::atoll(argv[i + 1]);
    if (key == "--hidden") a.hidden = value;
    else if (key == "--layers") a.layers = value;
    else if (key == "--vocab") a.vocab = value;
    else if (key == "--batch") a.batch = value;
    else if (key == "--prompt") a.prompt = value;
    else if (key == "--new") a.new_tokens = value;
    else if (key == "--repeats") a.repeats = value;
    else if (key == "--threads") a.threads = value;
    else {
      std::fprintf(stderr, "unknown argument %s\n", key.c_str());
      std::exit(2);
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  if (a.threads > 0) at::set_num_threads(static_cast<int>(a.threads));
  torch::manual_seed(0);
  const auto config = prefopt::LlamaConfig()
                          .vocab_size(a.vocab)
                          .hidden_size(a.hidden)
                          .intermediate_size(a.hidden * 8 / 3)
                          .num_hidden_layers(a.layers)
                          .num_attention_heads(a.hidden / 64)
                          .num_key_value_heads(std::max<int64_t>(1, a.hidden / 256))
                          .tie_word_embeddings(true);
  prefopt::LlamaForCausalLM model(config);
  model->eval();
  const torch::Tensor prompts = torch::randint(a.vocab, {a.batch, a.prompt}, torch::kLong);
  const auto options = prefopt::GenerateOptions().max_new_tokens(a.new_tokens);

  std::printf("model: hidden %lld, %lld layers, vocab %lld (%.1fM parameters); batch %lld, prompt %lld, %lld new "
              "tokens, greedy, %d threads\n",
              static_cast<long long>(a.hidden), static_cast<long long>(a.layers), static_cast<long long>(a.vocab),
              [&] {
                double n = 0;
                for (const auto& p : model->parameters()) n += static_cast<double>(p.numel());
                return n / 1e6;
              }(),
              static_cast<long long>(a.batch), static_cast<long long>(a.prompt), static_cast<long long>(a.new_tokens),
              at::get_num_threads());
  double best[2] = {1e300, 1e300};
  torch::Tensor ids[2];
  for (int64_t r = 0; r < a.repeats; ++r) {
    for (int cached = 1; cached >= 0; --cached) {
      const auto start = std::chrono::steady_clock::now();
      const auto out = prefopt::generate(*model, prompts, {}, prefopt::GenerateOptions(options).use_cache(cached == 1));
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      best[cached] = std::min(best[cached], seconds);
      ids[cached] = out.sequences;
      std::printf("  repeat %lld, %-8s %8.3f s  %8.1f tokens/s\n", static_cast<long long>(r + 1),
                  cached ? "cache" : "no cache", seconds,
                  static_cast<double>(a.batch * out.sequences.size(1)) / seconds);
    }
  }
  TORCH_CHECK(ids[0].equal(ids[1]), "the cached and uncached greedy ids differ");
  const double tokens = static_cast<double>(a.batch * ids[1].size(1));
  std::printf("best of %lld: cache %.1f tokens/s, no cache %.1f tokens/s, speed-up %.2fx (greedy ids identical)\n",
              static_cast<long long>(a.repeats), tokens / best[1], tokens / best[0], best[0] / best[1]);
  return 0;
}
