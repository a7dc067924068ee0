// prefopt-train's default demo: builds a tiny Llama from scratch, fine-tunes it (SFT) on a sloppy annotator's
// word-reversal demonstrations, measures the held-out success rate with the task's checker, samples completions
// of its own and pairs a correct one (chosen) with an incorrect one (rejected), trains with DPO against the frozen
// SFT model, and measures again, with the held-out reward accuracy. Both phases run through prefopt::train::Trainer.
// It never downloads anything, never reads a config, and writes only under its output directory.
#include "demo/demo.h"
#include "demo/plot_png.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <prefopt/data/tokenizer.h>
#include <prefopt/model/generate.h>
#include <prefopt/model/llama.h>
#include <prefopt/train/checkpoint.h>
#include <prefopt/train/trainer.h>

#include "demo/reverse_task.h"

#ifndef PREFOPT_DEMO_DATA_DIR
#define PREFOPT_DEMO_DATA_DIR "examples/data/demo"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using prefopt::data::ByteTokenizer;

struct DemoOptions {
  bool quick = false;
  uint64_t seed = 1;
  std::string output_dir = "/tmp/prefopt-demo-out";
  std::string data_dir = PREFOPT_DEMO_DATA_DIR;
  int threads = 0;  // 0: one thread (see run)
  std::string write_data;
  // Sizes of the full run (--quick shrinks them to a smoke test that shows the table, not an improvement).
  int64_t sft_steps = 800, sft_batch = 64;
  int64_t dpo_steps = 200, dpo_batch = 32;
  double beta = 0.1, rpo_alpha = 1.0, dpo_lr = 3e-4;
  int64_t dpo_prompts = 1000, samples_per_prompt = 8, heldout = 300;
  // --quick only: a prompt with no correct sample takes the checker's answer as chosen, so the few-step model
  // (which gets nothing right) still yields pairs and the DPO phase runs. The full demo uses its own samples only.
  bool rule_chosen_fallback = false;
};

constexpr const char* kUsage =
    "usage: prefopt-train [--quick] [--seed N] [--output_dir DIR] [--data_dir DIR] [--threads N]\n"
    "                     [--beta B] [--rpo_alpha A] [--dpo_lr LR] [--write_data DIR]\n"
    "  With no argument: the default demo (a tiny Llama learns to reverse words from a sloppy annotator,\n"
    "  then DPO on its own checker-graded samples fixes the annotator's mistake). About a minute on one core.\n"
    "  --quick           a seconds-long smoke run (too short to show the improvement)\n"
    "  --seed N          model initialisation, sampling and data order (default 1)\n"
    "  --output_dir DIR  where metrics.jsonl and the sft/ and dpo/ runs go (default /tmp/prefopt-demo-out)\n"
    "  --data_dir DIR    the task data, sft.jsonl and heldout.jsonl (default: the shipped examples/data/demo)\n"
    "  --threads N       intra-op threads (default 1: the ops of so small a model are too short to split)\n"
    "  --beta B, --rpo_alpha A, --dpo_lr LR\n"
    "                    DPO's beta (0.1), the weight of its NLL term on the chosen (1; 0 = plain DPO), its lr (3e-4)\n"
    "  --write_data DIR  regenerate the shipped data files into DIR and exit\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int64_t parse_int(const std::string& flag, const std::string& value, int64_t min) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || v < min) {
    throw UsageError(flag + " expects an integer >= " + std::to_string(min) + ", got \"" + value + "\"");
  }
  return v;
}

DemoOptions parse(int argc, char** argv) {
  DemoOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--quick") {
      o.quick = true;
    } else if (arg == "--demo") {
      // Accepted so that "prefopt-train --demo" reads naturally; the demo is what runs anyway.
    } else if (arg == "--seed") {
      o.seed = static_cast<uint64_t>(parse_int(arg, value(), 0));
    } else if (arg == "--output_dir") {
      o.output_dir = value();
    } else if (arg == "--data_dir") {
      o.data_dir = value();
    } else if (arg == "--beta" || arg == "--rpo_alpha" || arg == "--dpo_lr") {
      const std::string v = value();
      size_t used = 0;
      double x = -1.0;
      try {
        x = std::stod(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != v.size() || !(x >= 0.0) || (arg != "--rpo_alpha" && x == 0.0)) {
        throw UsageError(arg + " expects a number " + (arg == "--rpo_alpha" ? ">= 0" : "> 0") + ", got \"" + v + "\"");
      }
      (arg == "--beta" ? o.beta : arg == "--rpo_alpha" ? o.rpo_alpha : o.dpo_lr) = x;
    } else if (arg == "--threads") {
      o.threads = static_cast<int>(parse_int(arg, value(), 1));
    } else if (arg == "--write_data") {
      o.write_data = value();
    } else if (arg == "--help" || arg == "-h") {
      throw UsageError("");
    } else {
      throw UsageError("unknown option \"" + arg + "\"");
    }
  }
  if (o.quick) {
    o.sft_steps = 30;
    o.sft_batch = 32;
    o.dpo_steps = 6;
    o.dpo_batch = 16;
    o.dpo_prompts = 32;
    o.samples_per_prompt = 4;
    o.heldout = 32;
    o.rule_chosen_fallback = true;
  }
  return o;
}

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<int64_t> prompt_ids(const ByteTokenizer& tok, const std::string& prompt) {
  std::vector<int64_t> ids{ByteTokenizer::kBosId};
  const auto bytes = tok.encode(prompt);
  ids.insert(ids.end(), bytes.begin(), bytes.end());
  return ids;
}

std::vector<int64_t> completion_ids(const ByteTokenizer& tok, const std::string& completion) {
  auto ids = tok.encode(completion);
  ids.push_back(ByteTokenizer::kEosId);
  return ids;
}

prefopt::LlamaConfig demo_model_config() {
  return prefopt::LlamaConfig()
      .vocab_size(ByteTokenizer::kVocabSize)
      .hidden_size(128)
      .intermediate_size(256)
      .num_hidden_layers(2)
      .num_attention_heads(4)
      .num_key_value_heads(4)
      .max_position_embeddings(64)
      .pad_token_id(ByteTokenizer::kPadId)
      .bos_token_id(ByteTokenizer::kBosId)
      .eos_token_ids({ByteTokenizer::kEosId});
}

constexpr int64_t kMaxNewTokens = demo::kWordLength + 3;
constexpr int64_t kGenerateRows = 512;

// Completions of `prompts` (K per prompt, consecutive), decoded with special tokens rendered, so a completion
// that wanders into "<bos>" or "<pad>" can never pass the checker.
struct Sampled {
  std::vector<std::string> text;
  std::vector<std::vector<int64_t>> ids;  // generated ids, the EOS included when the row emitted one
};

Sampled sample(prefopt::LlamaForCausalLMImpl& model, const std::vector<std::string>& prompts, int64_t k,
               double temperature, std::optional<at::Generator> generator) {
  ByteTokenizer tok;
  Sampled out;
  const int64_t per_call = std::max<int64_t>(1, kGenerateRows / k);
  for (size_t start = 0; start < prompts.size(); start += static_cast<size_t>(per_call)) {
    std::vector<std::vector<int64_t>> batch;
    for (size_t i = start; i < std::min(prompts.size(), start + static_cast<size_t>(per_call)); ++i) {
      for (int64_t j = 0; j < k; ++j) batch.push_back(prompt_ids(tok, prompts[i]));
    }
    const auto gen = prefopt::generate(model, batch,
                                       prefopt::GenerateOptions()
                                           .max_new_tokens(kMaxNewTokens)
                                           .temperature(temperature)
                                           .eos_token_ids({ByteTokenizer::kEosId})
                                           .pad_token_id(ByteTokenizer::kPadId)
                                           .generator(generator));
    for (size_t r = 0; r < gen.completions.size(); ++r) {
      out.text.push_back(tok.decode(gen.completions[r], /*skip_special_tokens=*/false));
      auto ids = gen.completions[r];
      if (gen.finished[static_cast<int64_t>(r)].item<bool>()) ids.push_back(ByteTokenizer::kEosId);
      out.ids.push_back(std::move(ids));
    }
  }
  return out;
}

struct HeldoutScore {
  double success = 0.0, dropped = 0.0;
  std::vector<std::string> completions;
};

HeldoutScore score_heldout(prefopt::LlamaForCausalLMImpl& model, const std::vector<demo::TaskExample>& heldout) {
  std::vector<std::string> prompts;
  for (const auto& ex : heldout) prompts.push_back(ex.prompt);
  HeldoutScore s;
  s.completions = sample(model, prompts, 1, /*temperature=*/0.0, std::nullopt).text;
  for (size_t i = 0; i < prompts.size(); ++i) {
    s.success += demo::is_correct(prompts[i], s.completions[i]) ? 1.0 : 0.0;
    s.dropped += demo::is_dropped_last_letter(prompts[i], s.completions[i]) ? 1.0 : 0.0;
  }
  s.success /= static_cast<double>(prompts.size());
  s.dropped /= static_cast<double>(prompts.size());
  return s;
}

struct PairStats {
  int64_t samples = 0, correct = 0;
};

// One pair per prompt whose K samples hold both a correct and an incorrect completion: the first of each.
std::vector<prefopt::data::PairExample> checker_pairs(prefopt::LlamaForCausalLMImpl& model,
                                                      const std::vector<std::string>& prompts, int64_t k,
                                                      at::Generator generator, bool rule_chosen_fallback,
                                                      PairStats& stats) {
  ByteTokenizer tok;
  const Sampled s = sample(model, prompts, k, /*temperature=*/1.0, generator);
  std::vector<prefopt::data::PairExample> pairs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    int64_t good = -1, bad = -1;
    for (int64_t j = 0; j < k; ++j) {
      const auto r = static_cast<int64_t>(i) * k + j;
      const bool ok = demo::is_correct(prompts[i], s.text[static_cast<size_t>(r)]);
      stats.samples += 1;
      stats.correct += ok ? 1 : 0;
      if (ok && good < 0) good = r;
      if (!ok && bad < 0) bad = r;
    }
    if (good >= 0 && bad >= 0) {
      pairs.push_back({prompt_ids(tok, prompts[i]), s.ids[static_cast<size_t>(good)],
                       s.ids[static_cast<size_t>(bad)]});
    } else if (bad >= 0 && rule_chosen_fallback) {
      const std::string word = demo::word_of(prompts[i]);
      pairs.push_back({prompt_ids(tok, prompts[i]), completion_ids(tok, std::string(word.rbegin(), word.rend())),
                       s.ids[static_cast<size_t>(bad)]});
    }
  }
  return pairs;
}

// A completion as the table shows it: bytes outside printable ASCII become \xNN, so a degenerate sample never
// writes raw bytes to the terminal.
std::string printable(const std::string& text) {
  std::string out;
  for (const unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string percent(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", 100.0 * x);
  return buf;
}

int run(const DemoOptions& o) {
  const auto start = Clock::now();
  // One intra-op thread by default: the model is so small that every op is microseconds of work, and OpenMP's
  // barriers cost more than they save (measured: 2 threads were 20x slower on a shared 2-core machine).
  at::set_num_threads(o.threads > 0 ? o.threads : 1);

  if (!o.write_data.empty()) {
    prefopt::train::make_directories(o.write_data);
    demo::write_task_data(demo::generate_task_data(), o.write_data);
    std::printf("wrote %s/sft.jsonl and %s/heldout.jsonl (seed %llu)\n", o.write_data.c_str(), o.write_data.c_str(),
                static_cast<unsigned long long>(demo::kDataSeed));
    return 0;
  }

  demo::TaskData data;
  std::string data_source;
  if (file_exists(o.data_dir + "/sft.jsonl")) {
    data = demo::read_task_data(o.data_dir);
    data_source = o.data_dir;
  } else {
    // An installed binary has no source tree: the files are a fixed-seed function, so regenerate them.
    data = demo::generate_task_data();
    data_source = "generated in memory (seed " + std::to_string(demo::kDataSeed) + "; " + o.data_dir + " not found)";
  }
  std::vector<demo::TaskExample> heldout(
      data.heldout.begin(), data.heldout.begin() + std::min<int64_t>(o.heldout, data.heldout.size()));
  int64_t annotator_wrong = 0;
  for (const auto& ex : data.sft) annotator_wrong += demo::is_correct(ex.prompt, ex.completion) ? 0 : 1;

  ByteTokenizer tok;
  torch::manual_seed(o.seed);
  prefopt::LlamaForCausalLM model(demo_model_config());
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();

  std::printf("prefopt default demo: preference optimisation with a programmatic checker\n");
  std::printf("  task   reverse a %lld-letter word, e.g. \"mango>\" -> \"ognam\"; a program checks every answer\n",
              static_cast<long long>(demo::kWordLength));
  std::printf("  data   %zu demonstrations from a sloppy annotator (%s of them drop the last letter: \"ogna\"),\n"
              "         %zu held-out words; %s\n",
              data.sft.size(), percent(static_cast<double>(annotator_wrong) / data.sft.size()).c_str(),
              heldout.size(), data_source.c_str());
  std::printf("  model  Llama, 2 layers, hidden 128, 4 heads, byte vocabulary of %lld, %.2fM parameters, from "
              "scratch (seed %llu)%s\n\n",
              static_cast<long long>(ByteTokenizer::kVocabSize), parameters / 1e6,
              static_cast<unsigned long long>(o.seed), o.quick ? "; --quick: a smoke run, too short to learn" : "");
  std::fflush(stdout);

  prefopt::train::make_directories(o.output_dir);
  const std::string metrics_path = o.output_dir + "/metrics.jsonl";
  std::ofstream metrics(metrics_path, std::ios::trunc);
  if (!metrics) throw std::runtime_error("cannot write " + metrics_path);

  // About 40 log points per phase feed the plot; a quarter of them are printed.
  auto progress = [](const char* phase, int64_t total) {
    return [phase, total, count = 0](const prefopt::train::LogEntry& e, bool is_eval) mutable {
      if (is_eval || (count++ % 10 != 9 && e.step != total)) return;
      const auto loss = e.metrics.find("loss");
      std::printf("    %s step %4lld/%lld  loss %.4f\n", phase, static_cast<long long>(e.step),
                  static_cast<long long>(total), loss == e.metrics.end() ? 0.0 : loss->second);
      std::fflush(stdout);
    };
  };

  // [1/4] Supervised fine-tuning on the annotator's demonstrations, mistakes included.
  auto t = Clock::now();
  std::printf("[1/4] SFT on the demonstrations: %lld steps, batch %lld, lr 3e-3 (warm-up + cosine)\n",
              static_cast<long long>(o.sft_steps), static_cast<long long>(o.sft_batch));
  std::vector<prefopt::train::CompletionExample> sft_examples;
  for (const auto& ex : data.sft) sft_examples.push_back({prompt_ids(tok, ex.prompt), completion_ids(tok, ex.completion)});
  double sft_loss = 0.0;
  std::vector<prefopt::train::LogEntry> sft_logs, dpo_logs;
  {
    prefopt::train::Trainer sft(prefopt::train::TrainerConfig()
                                    .loss("sft")
                                    .learning_rate(3e-3)
                                    .adam_beta2(0.98)
                                    .warmup_steps(std::min<int64_t>(50, o.sft_steps / 4))
                                    .lr_scheduler_type("cosine")
                                    .batch_size(o.sft_batch)
                                    .max_steps(o.sft_steps)
                                    .num_train_epochs(1000)
                                    .logging_steps(std::max<int64_t>(1, o.sft_steps / 40))
                                    .max_grad_norm(1.0)
                                    .seed(o.seed)
                                    .output_dir(o.output_dir + "/sft")
                                    .save_final_model(false)
                                    .progress(prefopt::train::ProgressMode::Silent),
                                model, prefopt::train::Dataset::from_completions(std::move(sft_examples)));
    sft.set_log_callback(progress("sft", o.sft_steps));
    const auto result = sft.train();
    sft_loss = result.steps.back().metrics.at("loss");
    sft_logs = result.logs;
  }
  model->eval();
  const double sft_seconds = seconds_since(t);

  // [2/4] Greedy answers to the held-out prompts, judged by the checker.
  t = Clock::now();
  const HeldoutScore before = score_heldout(*model, heldout);
  std::printf("[2/4] held-out success rate after SFT: %s (%s drop the last letter, as the annotator did)\n",
              percent(before.success).c_str(), percent(before.dropped).c_str());
  std::fflush(stdout);

  // [3/4] On-policy pairs: K samples per prompt at temperature 1, the checker picks chosen and rejected.
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(o.seed + 1000);
  std::vector<std::string> dpo_prompts;
  for (int64_t i = 0; i < std::min<int64_t>(o.dpo_prompts, data.sft.size()); ++i) dpo_prompts.push_back(data.sft[i].prompt);
  std::vector<std::string> heldout_prompts;
  for (const auto& ex : heldout) heldout_prompts.push_back(ex.prompt);
  PairStats train_stats, heldout_stats;
  auto train_pairs = checker_pairs(*model, dpo_prompts, o.samples_per_prompt, generator, o.rule_chosen_fallback, train_stats);
  auto heldout_pairs = checker_pairs(*model, heldout_prompts, o.samples_per_prompt, generator, o.rule_chosen_fallback, heldout_stats);
  std::printf("[3/4] sampled %lld completions for each of %zu training prompts (temperature 1): %s correct;\n"
              "      %zu pairs (chosen = a correct sample, rejected = an incorrect one), %zu held-out pairs\n",
              static_cast<long long>(o.samples_per_prompt), dpo_prompts.size(),
              percent(static_cast<double>(train_stats.correct) / std::max<int64_t>(1, train_stats.samples)).c_str(),
              train_pairs.size(), heldout_pairs.size());
  if (o.rule_chosen_fallback) {
    std::printf("      (--quick: prompts without a correct sample take the checker's answer as chosen)\n");
  }
  std::fflush(stdout);
  const auto num_train_pairs = static_cast<int64_t>(train_pairs.size());
  if (train_pairs.empty()) throw std::runtime_error("no training pair: every prompt's samples were all right or all wrong");
  const double sample_seconds = seconds_since(t);

  // [4/4] DPO against the frozen SFT model, with an NLL term on the chosen answers (rpo_alpha) that keeps the
  // likelihood of right answers from falling along with the wrong ones'.
  t = Clock::now();
  std::printf("[4/4] DPO on the pairs (beta %g, rpo_alpha %g): %lld steps, batch %lld, lr %g, reference = the SFT "
              "model\n",
              o.beta, o.rpo_alpha, static_cast<long long>(o.dpo_steps), static_cast<long long>(o.dpo_batch), o.dpo_lr);
  double reward_accuracy = 0.0, dpo_loss = 0.0;
  std::map<std::string, double> eval_metrics;
  {
    prefopt::train::Trainer dpo(prefopt::train::TrainerConfig()
                                    .loss("dpo")
                                    .loss_options({{"beta", o.beta}, {"rpo_alpha", o.rpo_alpha}})
                                    .learning_rate(o.dpo_lr)
                                    .lr_scheduler_type("constant")
                                    .batch_size(o.dpo_batch)
                                    .eval_batch_size(64)
                                    .max_steps(o.dpo_steps)
                                    .num_train_epochs(1000)
                                    .logging_steps(std::max<int64_t>(1, o.dpo_steps / 40))
                                    .max_grad_norm(1.0)
                                    .seed(o.seed)
                                    .output_dir(o.output_dir + "/dpo")
                                    .progress(prefopt::train::ProgressMode::Silent),
                                model, prefopt::train::Dataset::from_pairs(std::move(train_pairs)));
    dpo.set_log_callback(progress("dpo", o.dpo_steps));
    const auto result = dpo.train();
    dpo_loss = result.steps.back().metrics.at("loss");
    dpo_logs = result.logs;
    if (!heldout_pairs.empty()) {
      eval_metrics = dpo.evaluate(prefopt::train::Dataset::from_pairs(heldout_pairs));
      reward_accuracy = eval_metrics.at("eval_rewards/accuracies");
    }
  }
  model->eval();
  const double dpo_seconds = seconds_since(t);
  const HeldoutScore after = score_heldout(*model, heldout);

  std::printf("\nHeld-out results (%zu prompts never trained on, greedy decoding)\n", heldout.size());
  std::printf("  %-40s %10s %10s\n", "", "after SFT", "after DPO");
  std::printf("  %-40s %10s %10s\n", "success rate (checker)", percent(before.success).c_str(),
              percent(after.success).c_str());
  std::printf("  %-40s %10s %10s\n", "dropped the last letter", percent(before.dropped).c_str(),
              percent(after.dropped).c_str());
  std::printf("  %-40s %10s %10s\n",
              ("reward accuracy (" + std::to_string(heldout_pairs.size()) + " held-out pairs)").c_str(), "-",
              heldout_pairs.empty() ? "-" : percent(reward_accuracy).c_str());
  std::printf("  (reward accuracy: how often DPO's implicit reward beta*log(pi/pi_ref) ranks the correct sample\n"
              "   above the incorrect one; before DPO the policy is the reference and every reward is 0)\n\n");
  std::printf("  %-10s %-10s %-14s %-14s\n", "prompt", "answer", "after SFT", "after DPO");
  for (size_t i = 0; i < std::min<size_t>(6, heldout.size()); ++i) {
    auto mark = [&](const std::string& c) {
      return "\"" + printable(c) + "\"" + (demo::is_correct(heldout[i].prompt, c) ? " ok" : " x");
    };
    std::printf("  %-10s %-10s %-14s %-14s\n", heldout[i].prompt.c_str(), heldout[i].completion.c_str(),
                mark(before.completions[i]).c_str(), mark(after.completions[i]).c_str());
  }
  const double total = seconds_since(start);
  std::printf("\n  time: SFT %.0f s, evaluation and sampling %.0f s, DPO %.0f s, total %.0f s (%d threads)\n",
              sft_seconds, sample_seconds, dpo_seconds, total, at::get_num_threads());
  const std::string plot_path = o.output_dir + "/metrics.png";
  auto curve = [](const std::vector<prefopt::train::LogEntry>& logs, const std::string& name) {
    demo::PlotSeries series{name, {}};
    for (const auto& e : logs) {
      if (auto it = e.metrics.find(name); it != e.metrics.end()) series.points.emplace_back(e.step, it->second);
    }
    return series;
  };
  demo::write_plot_png(plot_path, {{"sft: loss", {curve(sft_logs, "loss")}},
                                   {"dpo: loss", {curve(dpo_logs, "loss"), curve(dpo_logs, "nll_loss")}},
                                   {"dpo: rewards", {curve(dpo_logs, "rewards/accuracies"),
                                                     curve(dpo_logs, "rewards/margins")}}});
  std::printf("  outputs: %s (summary), %s (the training curves), %s/sft and %s/dpo (trainer metrics, checkpoints;\n"
              "           final model in dpo/final)\n",
              metrics_path.c_str(), plot_path.c_str(), o.output_dir.c_str(), o.output_dir.c_str());

  nlohmann::json summary = {{"phase", "summary"},
                            {"seed", o.seed},
                            {"quick", o.quick},
                            {"beta", o.beta},
                            {"rpo_alpha", o.rpo_alpha},
                            {"dpo_learning_rate", o.dpo_lr},
                            {"heldout_prompts", heldout.size()},
                            {"success_rate_after_sft", before.success},
                            {"success_rate_after_dpo", after.success},
                            {"dropped_last_letter_after_sft", before.dropped},
                            {"dropped_last_letter_after_dpo", after.dropped},
                            {"heldout_pairs", heldout_pairs.size()},
                            {"heldout_reward_accuracy", reward_accuracy},
                            {"train_pairs", num_train_pairs},
                            {"train_sample_success_rate",
                             static_cast<double>(train_stats.correct) / std::max<int64_t>(1, train_stats.samples)},
                            {"sft_final_loss", sft_loss},
                            {"dpo_final_loss", dpo_loss},
                            {"seconds", total}};
  for (const auto& [name, value] : eval_metrics) summary[name] = value;
  metrics << summary.dump() << "\n";
  if (!metrics) throw std::runtime_error("writing " + metrics_path + " failed");
  return 0;
}

}  // namespace

const char* demo_usage() { return kUsage; }

int run_default_demo(int argc, char** argv) {
  DemoOptions options;
  try {
    options = parse(argc, argv);
  } catch (const UsageError& e) {
    if (e.what()[0] != '\0') std::fprintf(stderr, "prefopt-train: %s\n", e.what());
    std::fputs(kUsage, e.what()[0] != '\0' ? stderr : stdout);
    return e.what()[0] != '\0' ? 2 : 0;
  }
  try {
    return run(options);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "prefopt-train demo: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prefopt-train demo: %s\n", e.what());
  }
  return 1;
}
