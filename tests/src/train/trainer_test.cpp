// Tests of the train layer: schedule, clipping, accumulation, determinism, resume exactness, atomic checkpoints,
// the reference modes, the loss registry and the run configuration.
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <gtest/gtest.h>

#include <prefopt/train/checkpoint.h>
#include <prefopt/train/run.h>
#include <prefopt/train/loss_registry.h>
#include <prefopt/train/optim.h>
#include <prefopt/train/schedule.h>
#include <prefopt/train/trainer.h>
#include <prefopt/model/sequence_classifier.h>

#include "support/expect_error.h"
#include "support/temp_tree.h"
#include "train_test_util.h"

namespace pt = prefopt::train;
using prefopt::testing::expect_error;
using prefopt::testing::path_exists;
using prefopt::testing::TempTree;

namespace {

std::vector<double> losses(const pt::TrainResult& r) {
  std::vector<double> out;
  for (const auto& s : r.steps) out.push_back(s.metrics.at("loss"));
  return out;
}

// Pairs whose chosen responses have key phrases to remove, with SPO's graded variants.
pt::Dataset spo_pairs(int n, int64_t degrees) {
  std::vector<prefopt::data::PairExample> pairs;
  for (int i = 0; i < n; ++i) {
    pairs.push_back({prefopt::testing::ids("q" + std::to_string(i) + ":", true),
                     prefopt::testing::ids(" Paris is the capital of France, a large country.", false, true),
                     prefopt::testing::ids(" no" + std::to_string(i), false, true)});
  }
  auto data = pt::Dataset::from_pairs(std::move(pairs));
  pt::add_degree_variants(data, prefopt::data::ByteTokenizer(), degrees);
  return data;
}

pt::TrainerConfig quiet() { return pt::TrainerConfig().progress(pt::ProgressMode::Silent).learning_rate(1e-2); }

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST(TrainSchedule, MatchesWarmupCosineFormula) {
  const double peak = 3e-4, floor_ratio = 0.1;
  const int64_t total = 50, warm = 5;
  pt::LRSchedule s(peak, total, warm, floor_ratio);
  for (int64_t step = 0; step <= total; ++step) {
    double expected;
    if (step < warm) {
      expected = peak * step / warm;
    } else {
      const double progress = static_cast<double>(step - warm) / (total - warm);
      expected = peak * (floor_ratio + (1 - floor_ratio) * 0.5 * (1 + std::cos(M_PI * progress)));
    }
    EXPECT_NEAR(s.lr_at(step), expected, 1e-15) << "step " << step;
  }
  EXPECT_DOUBLE_EQ(s.lr_at(warm), peak);
  EXPECT_NEAR(s.lr_at(total), peak * floor_ratio, 1e-15);
  EXPECT_EQ(s.lr(), 0.0);
  s.step();
  EXPECT_EQ(s.current_step(), 1);
  pt::LRSchedule c(1.0, 10, 2, 0.0, "constant");
  EXPECT_DOUBLE_EQ(c.lr_at(1), 0.5);
  EXPECT_DOUBLE_EQ(c.lr_at(9), 1.0);
  EXPECT_EQ(pt::LRSchedule::resolve_warmup(0, 0.1, 95), 10);
  EXPECT_EQ(pt::LRSchedule::resolve_warmup(3, 0.5, 95), 3);
  expect_error([] { pt::LRSchedule(1.0, 10, 0, 0.0, "linear"); }, "lr_scheduler_type");
  expect_error([] { pt::LRSchedule(1.0, 10, 0, 1.5); }, "min_lr_ratio");
}

TEST(TrainOptim, ClipGradNormScalesToMaxNorm) {
  auto a = torch::zeros({2}, torch::requires_grad());
  auto b = torch::zeros({1}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3.0, 0.0});
  b.mutable_grad() = torch::tensor({4.0});
  EXPECT_DOUBLE_EQ(pt::clip_grad_norm({a, b}, 10.0), 5.0);  // below the limit: unchanged
  EXPECT_FLOAT_EQ(a.grad()[0].item<float>(), 3.0f);
  EXPECT_DOUBLE_EQ(pt::clip_grad_norm({a, b}, 1.0), 5.0);
  const double global = std::sqrt(std::pow(a.grad()[0].item<double>(), 2) + std::pow(b.grad()[0].item<double>(), 2));
  EXPECT_NEAR(global, 1.0, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 0.8, 1e-6);
  b.mutable_grad() = torch::tensor({NAN});
  expect_error([&] { pt::clip_grad_norm({a, b}, 1.0); }, "gradient norm");
}

TEST(TrainTrainer, AccumulationEqualsOneLargerBatch) {
  auto data = prefopt::testing::tiny_pairs(2);
  auto base = quiet().loss("dpo").shuffle(false).max_steps(1).max_grad_norm(0.0);
  auto m1 = prefopt::testing::tiny_model(3);
  auto m2 = prefopt::testing::tiny_model(3);
  pt::Trainer one(pt::TrainerConfig(base).batch_size(2).gradient_accumulation_steps(1), m1, data);
  pt::Trainer two(pt::TrainerConfig(base).batch_size(1).gradient_accumulation_steps(2), m2, data);
  auto r1 = one.train();
  auto r2 = two.train();
  EXPECT_NEAR(r1.steps[0].metrics.at("loss"), r2.steps[0].metrics.at("loss"), 1e-6);
  EXPECT_NEAR(r1.steps[0].metrics.at("grad_norm"), r2.steps[0].metrics.at("grad_norm"), 1e-5);
  auto p1 = m1->parameters(), p2 = m2->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::allclose(p1[i], p2[i], 1e-5, 1e-6)) << "parameter " << i;
}

TEST(TrainTrainer, SameSeedSameLosses) {
  auto data = prefopt::testing::tiny_pairs(7);
  auto config = quiet().loss("dpo").batch_size(2).gradient_accumulation_steps(2).num_train_epochs(2).seed(11);
  auto a = pt::Trainer(config, prefopt::testing::tiny_model(1), data).train();
  auto b = pt::Trainer(config, prefopt::testing::tiny_model(1), data).train();
  ASSERT_EQ(a.steps.size(), 4u);  // 4 micro-batches per epoch -> 2 steps per epoch
  EXPECT_EQ(losses(a), losses(b));
  auto c = pt::Trainer(pt::TrainerConfig(config).seed(12), prefopt::testing::tiny_model(1), data).train();
  EXPECT_NE(losses(a), losses(c));  // another shuffle
}

// Scoring from hidden states through fused_linear_logps (chunks far smaller than one row of logits, so the chunking
// is exercised) trains the same model as scoring from full logits, step for step, up to float rounding.
TEST(TrainTrainer, FusedLinearScoringMatchesLogits) {
  auto data = prefopt::testing::tiny_pairs(6);
  for (const std::string loss : {"dpo", "sft"}) {
    auto config = quiet().loss(loss).batch_size(2).max_steps(3).seed(3).learning_rate(1e-2);
    auto plain = pt::Trainer(config, prefopt::testing::tiny_model(4), data).train();
    auto fused = pt::Trainer(pt::TrainerConfig(config).fused_linear_logps(true).logps_chunk_bytes(256),
                             prefopt::testing::tiny_model(4), data)
                     .train();
    ASSERT_EQ(plain.steps.size(), 3u);
    ASSERT_EQ(fused.steps.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_NEAR(fused.steps[i].metrics.at("loss"), plain.steps[i].metrics.at("loss"), 1e-5) << loss << " step " << i;
      EXPECT_NEAR(fused.steps[i].metrics.at("grad_norm"), plain.steps[i].metrics.at("grad_norm"), 1e-4)
          << loss << " step " << i;
    }
  }
}

TEST(TrainTrainer, ResumeRepeatsTheUninterruptedRunExactly) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(10);
  // bco_pair with its running mean exercises the loss state; 10 pairs in micro-batches of 2, 2 per step: 3 steps
  // per epoch, the last one short, and the checkpoint at step 4 falls mid-epoch.
  auto config = quiet()
                    .loss("dpo")
                    .loss_options({{"loss_type", "bco_pair"}, {"bco_running_mean", true}})
                    .batch_size(2)
                    .gradient_accumulation_steps(2)
                    .max_steps(8)
                    .warmup_steps(2)
                    .save_steps(4)
                    .logging_steps(3)
                    .output_dir(tmp / "full")
                    .seed(5);
  auto full = pt::Trainer(config, prefopt::testing::tiny_model(2), data).train();
  ASSERT_EQ(full.steps.size(), 8u);
  ASSERT_TRUE(path_exists(tmp / "full/checkpoint-4/trainer_state.json"));

  // A fresh state: other torch seed, other initial weights; everything must come from the checkpoint.
  torch::manual_seed(999);
  auto resumed_config = pt::TrainerConfig(config).output_dir(tmp / "resumed").resume_from(tmp / "full/checkpoint-4");
  pt::Trainer resumed(resumed_config, prefopt::testing::tiny_model(77), data);
  auto rest = resumed.train();
  ASSERT_EQ(rest.steps.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(rest.steps[i].step, full.steps[4 + i].step);
    EXPECT_EQ(rest.steps[i].metrics.at("loss"), full.steps[4 + i].metrics.at("loss")) << "step " << 5 + i;
    EXPECT_EQ(rest.steps[i].metrics.at("learning_rate"), full.steps[4 + i].metrics.at("learning_rate"));
    EXPECT_EQ(rest.steps[i].metrics.at("grad_norm"), full.steps[4 + i].metrics.at("grad_norm"));
  }
  // The logging interval that straddled the checkpoint (steps 4-6) is the same too.
  ASSERT_FALSE(rest.logs.empty());
  EXPECT_EQ(rest.logs[0].step, 6);
  EXPECT_EQ(rest.logs[0].metrics.at("loss"), full.logs[1].metrics.at("loss"));
}

TEST(TrainCheckpoint, FailedWriteLeavesThePreviousCheckpointIntact) {
  TempTree tmp;
  const std::string dir = tmp / "out/checkpoint-1";
  pt::write_directory_atomically(dir, [](const std::string& t) {
    std::ofstream(t + "/a.txt") << "first";
  });
  EXPECT_EQ(read_text(dir + "/a.txt"), "first");
  EXPECT_THROW(pt::write_directory_atomically(dir,
                                              [](const std::string& t) {
                                                std::ofstream(t + "/a.txt") << "second, half";
                                                throw std::runtime_error("disk full (simulated)");
                                              }),
               std::runtime_error);
  EXPECT_EQ(read_text(dir + "/a.txt"), "first");
  EXPECT_EQ(entries(tmp / "out"), std::vector<std::string>{"checkpoint-1"});  // no temporary folder left
  // A new checkpoint folder that fails is not visible at all.
  EXPECT_THROW(pt::write_directory_atomically(tmp / "out/checkpoint-2",
                                              [](const std::string&) { throw std::runtime_error("killed"); }),
               std::runtime_error);
  EXPECT_EQ(pt::list_checkpoints(tmp / "out"), std::vector<std::string>{dir});
  // Replacing succeeds and leaves only the new content.
  pt::write_directory_atomically(dir, [](const std::string& t) { std::ofstream(t + "/b.txt") << "third"; });
  EXPECT_FALSE(path_exists(dir + "/a.txt"));
  EXPECT_EQ(read_text(dir + "/b.txt"), "third");
  EXPECT_EQ(entries(tmp / "out").size(), 1u);
}

TEST(TrainTrainer, PrecomputedReferenceEqualsCopy) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(6);
  auto config = quiet().loss("dpo").batch_size(3).max_steps(3).seed(3);
  auto copy = pt::Trainer(config, prefopt::testing::tiny_model(4), data, data).train();
  auto pre_config = pt::TrainerConfig(config).ref_model(pt::RefModelMode::Precomputed).output_dir(tmp / "pre");
  auto pre = pt::Trainer(pre_config, prefopt::testing::tiny_model(4), data, data).train();
  ASSERT_TRUE(path_exists(tmp / "pre/ref_logps.pt"));
  ASSERT_TRUE(path_exists(tmp / "pre/ref_logps_eval.pt"));
  auto a = losses(copy), b = losses(pre);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << "step " << i + 1;
  EXPECT_NEAR(copy.evals.back().metrics.at("eval_loss"), pre.evals.back().metrics.at("eval_loss"), 1e-5);
  // The cache is reused (same values) by a second run.
  auto again = pt::Trainer(pt::TrainerConfig(pre_config).output_dir(tmp / "pre"), prefopt::testing::tiny_model(4),
                           data)
                   .train();
  EXPECT_EQ(losses(again), b);
  expect_error([&] {
    pt::Trainer(pt::TrainerConfig(pre_config).loss("tdpo"), prefopt::testing::tiny_model(4), data);
  }, "ref_model must be \"copy\"");
}

TEST(TrainTrainer, EveryRegisteredFamilyTrains) {
  struct Case {
    std::string loss;
    pt::LossOptions options;
    pt::Dataset data;
  };
  std::vector<Case> cases = {
      {"sft", {}, prefopt::testing::tiny_completions(4)},
      {"sft", {}, prefopt::testing::tiny_pairs(4)},
      {"dpo", {{"loss_type", "ipo"}}, prefopt::testing::tiny_pairs(4)},
      {"dpo", {{"rpo_alpha", 1.0}}, prefopt::testing::tiny_pairs(4)},
      {"simpo", {{"beta", 2}}, prefopt::testing::tiny_pairs(4)},
      {"cpo", {}, prefopt::testing::tiny_pairs(4)},
      {"orpo", {}, prefopt::testing::tiny_pairs(4)},
      {"tdpo", {{"variant", "tdpo1"}}, prefopt::testing::tiny_pairs(4)},
      {"kto", {}, prefopt::testing::tiny_unpaired(4)},
      {"pro", {}, prefopt::testing::tiny_lists(4)},
      {"lipo_lambda", {}, prefopt::testing::tiny_lists(4)},
      {"plackett_luce", {}, prefopt::testing::tiny_lists(4)},
      {"all_pairs", {}, prefopt::testing::tiny_lists(4)},
      {"irpo", {{"length_normalize", true}}, prefopt::testing::tiny_lists(4)},
      {"ranklist", {{"window", 1}}, prefopt::testing::tiny_lists(4)},
      {"dpo", {{"use_weighting", true}, {"ld_alpha", 0.5}}, prefopt::testing::tiny_pairs(4)},
      {"reward", {}, prefopt::testing::tiny_pairs(4)},
      {"dove", {{"beta", 0.2}}, prefopt::testing::tiny_joint(4)},
      {"spo", {{"num_degrees", 3}, {"degree_weight", 0.5}}, spo_pairs(4, 3)},
      {"tpo", {{"beta", 0.5}}, prefopt::testing::tiny_step_lists(4)},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.loss);
    pt::Trainer trainer(quiet().loss(c.loss).loss_options(c.options).batch_size(2).max_steps(2), 
                        prefopt::testing::tiny_model(0), c.data, c.data);
    auto r = trainer.train();
    ASSERT_EQ(r.steps.size(), 2u);
    for (double l : losses(r)) EXPECT_TRUE(std::isfinite(l));
    ASSERT_FALSE(r.evals.empty());
    EXPECT_TRUE(r.evals.back().metrics.count("eval_loss"));
    if (c.data.format == pt::DataFormat::Ranked) {
      EXPECT_TRUE(r.evals.back().metrics.count("eval_ranking/ndcg"));
      EXPECT_TRUE(r.evals.back().metrics.count("eval_ranking/kendall_tau"));
    }
  }
}

TEST(TrainTrainer, WritesMetricsWithTrlNames) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(4);
  pt::Trainer trainer(quiet().loss("dpo").batch_size(2).max_steps(4).logging_steps(2).eval_steps(2)
                          .output_dir(tmp / "run"),
                      prefopt::testing::tiny_model(0), data, data);
  trainer.train();
  const std::string text = read_text(tmp / "run/metrics.jsonl");
  for (const char* key : {"\"loss\"", "\"learning_rate\"", "\"grad_norm\"", "\"epoch\"", "\"step\"",
                          "\"rewards/chosen\"", "\"rewards/rejected\"", "\"rewards/accuracies\"", "\"rewards/margins\"",
                          "\"logps/chosen\"", "\"logps/rejected\"", "\"eval_loss\"", "\"eval_rewards/accuracies\""}) {
    EXPECT_NE(text.find(key), std::string::npos) << key;
  }
  EXPECT_TRUE(path_exists(tmp / "run/checkpoint-4/model/model.safetensors"));
  EXPECT_TRUE(path_exists(tmp / "run/final/config.json"));
}

TEST(TrainTrainer, DataOfAnotherFormatIsAnError) {
  expect_error([] { pt::Trainer(quiet().loss("kto"), prefopt::testing::tiny_model(), prefopt::testing::tiny_pairs(2)); },
               "loss \"kto\" does not train on pairwise data; it trains on unpaired data");
}

TEST(TrainConfig, ErrorsNameTheKeyAndItsPath) {
  const std::string base = R"({"model": {"config": {"model_type": "llama", "vocab_size": 259, "hidden_size": 16, "intermediate_size": 32,
      "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}}, "data": {"train": "t.jsonl"})";
  auto parse = [&](const std::string& extra) { return pt::parse_run_config(base + extra + "}", "run.json", ""); };
  auto run = parse(R"(, "training": {"batch_size": 3, "seed": 9}, "loss": {"name": "simpo", "options": {"gamma": 1}})");
  EXPECT_EQ(run.trainer.batch_size(), 3);
  EXPECT_EQ(run.trainer.seed(), 9u);
  EXPECT_EQ(run.trainer.loss(), "simpo");
  EXPECT_EQ(run.train_file, "t.jsonl");
  expect_error([&] { parse(R"(, "trainng": {})"); }, "run.json: unknown key \"trainng\"");
  expect_error([&] { parse(R"(, "training": {"batch_sise": 2})"); }, "unknown key \"training.batch_sise\"");
  expect_error([&] { parse(R"(, "training": {"batch_size": "2"})"); },
               "run.json: training.batch_size: expected an integer, got string");
  expect_error([&] { parse(R"(, "optimizer": {"learning_rate": true})"); }, "optimizer.learning_rate: expected a number");
  expect_error([&] { parse(R"(, "loss": {"name": "dpo", "options": {"bta": 1}})"); }, "unknown option \"bta\"");
  expect_error([&] { parse(R"(, "loss": {"name": "nope"})"); }, "loss.name: unknown loss \"nope\"");
  expect_error([&] { parse(R"(, "loss": {"options": {}})"); }, "loss.name: missing (required)");
  expect_error([&] { pt::parse_run_config(R"({"model": {"path": "m"}})", "run.json"); }, "data: missing (required)");
  expect_error([&] { pt::parse_run_config(R"({"model": {"path": "m"}, "data": {}})", "run.json"); },
               "data.train: missing (required)");
  expect_error([&] { parse(R"(, "data": {"train": "x", "format": "pairs"})"); }, "unknown data format \"pairs\"");
  expect_error([&] { pt::parse_run_config("{\"model\": ", "run.json"); }, "run.json: invalid JSON");
}

TEST(TrainDataset, MalformedCompletionsNameFileAndLine) {
  TempTree tmp;
  const std::string path = tmp / "c.jsonl";
  std::ofstream(path) << R"({"prompt": "a", "completion": "b"})" << "\n" << R"({"prompt": "a", "completion": 3})" << "\n";
  prefopt::data::ByteTokenizer tok;
  expect_error([&] { pt::Dataset::read(path, pt::DataFormat::Completions, tok); },
               path + ":2: field \"completion\": expected a string or a list of messages, got number");
  std::ofstream(tmp / "p.jsonl") << R"({"prompt": "a", "chosen": "b"})" << "\n";
  expect_error([&] { pt::Dataset::read(tmp / "p.jsonl", pt::DataFormat::Pairwise, tok); }, "p.jsonl:1");
}

TEST(TrainTrainer, RewardModelTrainsWithMarginsAndResumesExactly) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(6);
  for (size_t i = 0; i < data.pairs.size(); ++i) {
    data.pairs[i].margin = 0.5 * static_cast<double>(i % 3);
    data.pairs[i].magnitude = 1.0 + static_cast<double>(i % 2);
  }
  for (const char* type : {"bradley_terry", "margin", "scaled"}) {
    SCOPED_TRACE(type);
    auto config = quiet().loss("reward").loss_options({{"loss_type", type}}).batch_size(2).max_steps(4).seed(2)
                      .save_steps(2).output_dir(tmp / type);
    auto full = pt::Trainer(config, prefopt::testing::tiny_model(3), data).train();
    ASSERT_EQ(full.steps.size(), 4u);
    EXPECT_TRUE(full.steps.back().metrics.count("accuracy"));
    // The head lives in the checkpoint: a resumed run repeats the last two steps exactly.
    auto rest = pt::Trainer(pt::TrainerConfig(config).output_dir(tmp / (std::string(type) + "_resumed"))
                                .resume_from(tmp / (std::string(type) + "/checkpoint-2")),
                            prefopt::testing::tiny_model(9), data)
                    .train();
    ASSERT_EQ(rest.steps.size(), 2u);
    EXPECT_EQ(rest.steps[0].metrics.at("loss"), full.steps[2].metrics.at("loss"));
    EXPECT_EQ(rest.steps[1].metrics.at("loss"), full.steps[3].metrics.at("loss"));
    // The final model is a sequence classifier, loadable as one.
    auto rm = prefopt::load_llama_sequence_classifier(tmp / (std::string(type) + "/final"));
    EXPECT_EQ(rm->config().num_labels(), 1);
  }
  // A margin loss on data without margins says what is missing.
  expect_error([&] {
    pt::Trainer(quiet().loss("reward").loss_options({{"loss_type", "margin"}}).batch_size(2).max_steps(1),
                prefopt::testing::tiny_model(3), prefopt::testing::tiny_pairs(2))
        .train();
  }, "loss_type margin needs a \"margin\" for every pair");
}

TEST(TrainTrainer, SpoNeedsItsDegreeVariants) {
  expect_error([] {
    pt::Trainer(quiet().loss("spo"), prefopt::testing::tiny_model(), prefopt::testing::tiny_pairs(4));
  }, "make them with train::add_degree_variants(data, tokenizer, 4)");
  auto data = spo_pairs(2, 3);
  ASSERT_EQ(data.degree_variants.size(), 2u);
  ASSERT_EQ(data.degree_variants[0].size(), 3u);
  EXPECT_EQ(data.degree_variants[0][0], data.pairs[0].chosen);  // degree 0 is the response itself
  EXPECT_LT(data.degree_variants[0][2].size(), data.degree_variants[0][1].size());  // more removed, shorter
}

TEST(TrainTrainer, TpoNeedsStepsAndALiveReference) {
  expect_error([] {
    pt::Trainer(quiet().loss("tpo"), prefopt::testing::tiny_model(), prefopt::testing::tiny_lists(4));
  }, "cut them with train::add_step_ids(data, tokenizer, delimiter)");
  expect_error([] {
    pt::Trainer(quiet().loss("tpo").ref_model(pt::RefModelMode::Precomputed), prefopt::testing::tiny_model(),
                prefopt::testing::tiny_step_lists(4));
  }, "ref_model must be \"copy\"");
}
