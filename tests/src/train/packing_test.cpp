// Tests of padding-free training: for every registered loss, the loss and every gradient from a packed micro-batch
// equal the padded micro-batch's (fp32, 1e-5 relative) on records whose lengths vary tenfold; the Trainer with
// data.packing follows the padded run step for step; token-budget micro-batches respect the budget and resume
// exactly.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <prefopt/data/packing.h>
#include <prefopt/train/batch_scoring.h>
#include <prefopt/train/loss_registry.h>
#include <prefopt/train/run.h>
#include <prefopt/train/trainer.h>

#include "support/expect_error.h"
#include "support/temp_tree.h"
#include "train_test_util.h"

namespace pt = prefopt::train;
using prefopt::testing::ids;
using prefopt::testing::TempTree;

namespace {

// Printable text of `n` characters drawn from `rng` (one byte-tokenizer token each).
std::string text(std::mt19937& rng, int n) {
  static const std::string alphabet = "abcdefghijklmnopqrstuvwxyz ,.!?";
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(alphabet[rng() % alphabet.size()]);
  return out;
}

// A length between lo and 10 * lo.
int length(std::mt19937& rng, int lo) { return lo + static_cast<int>(rng() % static_cast<unsigned>(9 * lo + 1)); }

pt::Dataset varied_pairs(int n, std::mt19937& rng) {
  std::vector<prefopt::data::PairExample> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({ids(text(rng, length(rng, 2)), true), ids(text(rng, length(rng, 3)), false, true),
                   ids(text(rng, length(rng, 3)), false, true)});
  }
  return pt::Dataset::from_pairs(std::move(out));
}

pt::Dataset varied_lists(int n, std::mt19937& rng, bool steps) {
  std::vector<prefopt::data::ListExample> out;
  for (int i = 0; i < n; ++i) {
    prefopt::data::ListExample ex;
    ex.prompt = ids(text(rng, length(rng, 2)), true);
    const int k = 2 + i % 3;  // lists of 2, 3 and 4 responses
    for (int j = 0; j < k; ++j) {
      std::string response = text(rng, length(rng, 3));
      if (steps) response += "\n" + text(rng, length(rng, 2));
      ex.responses.push_back(ids(response, false, true));
      ex.labels.push_back(static_cast<double>(k - j));
    }
    out.push_back(std::move(ex));
  }
  auto data = pt::Dataset::from_lists(std::move(out));
  if (steps) pt::add_step_ids(data, prefopt::data::ByteTokenizer(), "\n");
  return data;
}

pt::Dataset varied_unpaired(int n, std::mt19937& rng) {
  std::vector<prefopt::data::UnpairedExample> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({ids(text(rng, length(rng, 2)), true), ids(text(rng, length(rng, 3)), false, true), i % 2 == 0});
  }
  return pt::Dataset::from_unpaired(std::move(out));
}

pt::Dataset varied_joint(int n, std::mt19937& rng) {
  std::vector<prefopt::data::JointPairExample> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({ids(text(rng, length(rng, 2)), true), ids(text(rng, length(rng, 3)), false, true),
                   ids(text(rng, length(rng, 2)), true), ids(text(rng, length(rng, 3)), false, true)});
  }
  return pt::Dataset::from_joint(std::move(out));
}

pt::Dataset varied_completions(int n, std::mt19937& rng) {
  std::vector<pt::CompletionExample> out;
  for (int i = 0; i < n; ++i) out.push_back({ids(text(rng, length(rng, 2)), true), ids(text(rng, length(rng, 3)), false, true)});
  return pt::Dataset::from_completions(std::move(out));
}

// Pairs whose chosen responses hold key phrases (SPO's graded variants remove them), prompts of varied length.
pt::Dataset varied_spo_pairs(int n, std::mt19937& rng, int64_t degrees) {
  std::vector<prefopt::data::PairExample> out;
  const std::vector<std::string> chosen = {" Paris is the capital of France, a large country.",
                                           " Rome is old.", " The Nile is the longest river of Africa and of the world."};
  for (int i = 0; i < n; ++i) {
    out.push_back({ids(text(rng, length(rng, 2)), true), ids(chosen[static_cast<size_t>(i) % chosen.size()], false, true),
                   ids(text(rng, length(rng, 3)), false, true)});
  }
  auto data = pt::Dataset::from_pairs(std::move(out));
  pt::add_degree_variants(data, prefopt::data::ByteTokenizer(), degrees);
  return data;
}

prefopt::LlamaForCausalLM model(uint64_t seed) {
  torch::manual_seed(seed);
  auto config = prefopt::LlamaConfig()
                    .vocab_size(prefopt::data::ByteTokenizer::kVocabSize)
                    .hidden_size(32)
                    .intermediate_size(64)
                    .num_hidden_layers(2)
                    .num_attention_heads(4)
                    .num_key_value_heads(2)
                    .tie_word_embeddings(false)
                    .pad_token_id(prefopt::data::ByteTokenizer::kPadId);
  return prefopt::LlamaForCausalLM(config);
}

struct Run {
  double loss = 0;
  std::vector<torch::Tensor> grads;
};

// One micro-batch of `data` (examples idx) scored padded or packed, its loss and the gradients of the policy's and
// the loss's own parameters.
Run run(const std::string& loss, const pt::LossOptions& options, const pt::Dataset& data,
        const std::vector<int64_t>& idx, bool packing, bool fused) {
  auto policy = model(1), reference = model(2);
  auto objective = pt::make_objective(loss, options);
  torch::manual_seed(3);
  objective->bind(*policy);
  pt::ScoringConfig config;
  config.pad_token_id = prefopt::data::ByteTokenizer::kPadId;
  config.packing = packing;
  config.fused_linear_logps = fused;
  config.logps_chunk_bytes = 4096;
  pt::BatchScorer scorer(config, objective->needs());
  const auto out = objective->compute(scorer.score(policy, &reference, torch::Tensor(), data, idx));
  out.loss.backward();
  Run r;
  r.loss = out.loss.item<double>();
  for (const auto& p : policy->parameters()) r.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  for (const auto& p : objective->parameters()) r.grads.push_back(p.grad().clone());
  return r;
}

void expect_same(const Run& padded, const Run& packed, const std::string& what) {
  EXPECT_NEAR(packed.loss, padded.loss, 1e-5 * std::max(1.0, std::abs(padded.loss))) << what;
  ASSERT_EQ(packed.grads.size(), padded.grads.size()) << what;
  for (size_t i = 0; i < padded.grads.size(); ++i) {
    ASSERT_EQ(packed.grads[i].defined(), padded.grads[i].defined()) << what << " parameter " << i;
    if (!padded.grads[i].defined()) continue;
    // Relative error of the whole gradient tensor (its Frobenius norm), as fp32 rounding sets it.
    const double scale = padded.grads[i].norm().item<double>();
    const double diff = (packed.grads[i] - padded.grads[i]).norm().item<double>();
    EXPECT_LE(diff, 1e-5 * scale + 1e-9) << what << " parameter " << i << " (gradient norm " << scale << ")";
  }
}

}  // namespace

TEST(TrainPacking, EveryLossGetsThePaddedLossAndGradients) {
  std::mt19937 rng(7);
  const auto pairs = varied_pairs(6, rng);
  const auto lists = varied_lists(6, rng, false);
  const auto step_lists = varied_lists(6, rng, true);
  const auto unpaired = varied_unpaired(6, rng);
  const auto joint = varied_joint(6, rng);
  const auto completions = varied_completions(6, rng);
  const auto spo = varied_spo_pairs(6, rng, 3);
  struct Case {
    std::string loss;
    pt::LossOptions options;
    const pt::Dataset* data;
  };
  const std::vector<Case> cases = {
      {"dpo", {}, &pairs},
      {"dpo", {{"loss_type", "ipo"}}, &pairs},
      {"dpo", {{"use_weighting", true}, {"ld_alpha", 0.5}}, &pairs},
      {"dpo", {{"rpo_alpha", 1.0}}, &pairs},
      {"simpo", {}, &pairs},
      {"cpo", {}, &pairs},
      {"orpo", {}, &pairs},
      {"tdpo", {{"variant", "tdpo2"}}, &pairs},
      {"reward", {}, &pairs},
      {"spo", {{"num_degrees", 3}, {"degree_weight", 0.5}}, &spo},
      {"sft", {}, &completions},
      {"kto", {}, &unpaired},
      {"pro", {}, &lists},
      {"lipo_lambda", {}, &lists},
      {"plackett_luce", {}, &lists},
      {"all_pairs", {}, &lists},
      {"irpo", {}, &lists},
      {"ranklist", {}, &lists},
      {"tpo", {}, &step_lists},
      {"dove", {}, &joint},
  };
  // Every registered loss is among the cases.
  for (const auto& name : pt::registered_losses()) {
    EXPECT_TRUE(std::any_of(cases.begin(), cases.end(), [&](const Case& c) { return c.loss == name; })) << name;
  }
  const std::vector<int64_t> idx = {4, 0, 5, 2};
  for (const auto& c : cases) {
    for (const bool fused : {false, true}) {
      const std::string what = c.loss + (fused ? " (fused)" : "") + " " + std::to_string(c.options.size()) + " options";
      expect_same(run(c.loss, c.options, *c.data, idx, false, fused), run(c.loss, c.options, *c.data, idx, true, fused),
                  what);
    }
  }
}

TEST(TrainPacking, TrainerWithPackingFollowsThePaddedRun) {
  std::mt19937 rng(11);
  const auto pairs = varied_pairs(8, rng);
  const auto unpaired = varied_unpaired(8, rng);
  for (const auto& [loss, data] : {std::pair<std::string, const pt::Dataset*>{"dpo", &pairs}, {"kto", &unpaired}}) {
    auto config = pt::TrainerConfig().progress(pt::ProgressMode::Silent).learning_rate(1e-2).loss(loss)
                      .batch_size(4).max_steps(3).seed(3);
    auto padded = pt::Trainer(config, model(4), *data).train();
    auto packed = pt::Trainer(pt::TrainerConfig(config).packing(true), model(4), *data).train();
    ASSERT_EQ(packed.steps.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      const double l = padded.steps[i].metrics.at("loss"), g = padded.steps[i].metrics.at("grad_norm");
      EXPECT_NEAR(packed.steps[i].metrics.at("loss"), l, 1e-5 * std::max(1.0, std::abs(l))) << loss << " step " << i;
      EXPECT_NEAR(packed.steps[i].metrics.at("grad_norm"), g, 1e-5 * std::max(1.0, g)) << loss << " step " << i;
    }
  }
}

TEST(TrainPacking, RunConfigTakesPackingAndATokenBudget) {
  const auto run = pt::parse_run_config(
      R"({"model": {"config": {"vocab_size": 260, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "pad_token_id": 0, "model_type": "llama"}},
          "data": {"train": "t.jsonl", "packing": true, "max_tokens_per_batch": 2048}})",
      "run.json", "/tmp");
  EXPECT_TRUE(run.trainer.packing());
  EXPECT_EQ(run.trainer.max_tokens_per_batch(), 2048);
  prefopt::testing::expect_error(
      [] {
        pt::parse_run_config(R"({"model": {"config": {"vocab_size": 260, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2, "model_type": "llama"}}, "data": {"train": "t.jsonl", "max_tokens_per_batch": -1}})",
                             "run.json", "/tmp");
      },
      "run.json: data.max_tokens_per_batch: expected a non-negative integer");
  prefopt::testing::expect_error(
      [] {
        pt::parse_run_config(R"({"model": {"config": {"vocab_size": 260, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2, "model_type": "llama"}}, "data": {"train": "t.jsonl", "packing": "yes"}})",
                             "run.json", "/tmp");
      },
      "data.packing");
}

TEST(TrainPacking, TokenBudgetBatchesFitTheBudgetAndResumeExactly) {
  TempTree tmp;
  std::mt19937 rng(5);
  const auto data = varied_pairs(12, rng);
  int64_t largest = 0, total = 0;
  for (const auto& p : data.pairs) {
    largest = std::max(largest, prefopt::data::packed_token_count(p));
    total += prefopt::data::packed_token_count(p);
  }
  // Any two examples fit twice the largest one: every micro-batch but an epoch's last holds two or more.
  const int64_t budget = 2 * largest;
  auto config = pt::TrainerConfig().progress(pt::ProgressMode::Silent).learning_rate(1e-2).loss("dpo")
                    .packing(true).max_tokens_per_batch(budget).num_train_epochs(2).save_steps(3)
                    .output_dir(tmp / "full").seed(9);
  pt::Trainer full_trainer(config, model(6), data);
  auto full = full_trainer.train();
  EXPECT_LE(full_trainer.total_steps(), 2 * 6);
  EXPECT_GE(full_trainer.total_steps(), 2 * ((total + budget - 1) / budget));
  ASSERT_EQ(static_cast<int64_t>(full.steps.size()), full_trainer.total_steps());
  torch::manual_seed(999);
  pt::Trainer resumed(pt::TrainerConfig(config).output_dir(tmp / "resumed").resume_from(tmp / "full/checkpoint-3"),
                      model(77), data);
  auto rest = resumed.train();
  ASSERT_EQ(rest.steps.size(), full.steps.size() - 3);
  for (size_t i = 0; i < rest.steps.size(); ++i) {
    EXPECT_EQ(rest.steps[i].metrics.at("loss"), full.steps[3 + i].metrics.at("loss")) << "step " << 4 + i;
    EXPECT_EQ(rest.steps[i].metrics.at("grad_norm"), full.steps[3 + i].metrics.at("grad_norm"));
  }
}
