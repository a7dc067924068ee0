// Tests of mixed-precision and memory-saving training: the fp16 loss scaler's unscale / skip / grow rule, bf16 and
// fp16 runs against the fp32 run (documented tolerances), float32 master weights and AdamW state, a skipped fp16
// step that leaves the weights alone and is counted in the metrics, exact resume of an fp16 run (scaler state
// included), gradient checkpointing in the trainer (same losses and norms), the final model's save_dtype, and the
// errors for a low-precision model under mixed precision and for bad run-config values.
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include <prefopt/model/safetensors.h>
#include <prefopt/train/config.h>
#include <prefopt/train/mixed_precision.h>
#include <prefopt/train/trainer.h>

#include "support/expect_error.h"
#include "support/temp_tree.h"
#include "train_test_util.h"

namespace pt = prefopt::train;
using prefopt::testing::expect_error;
using prefopt::testing::TempTree;

namespace {

pt::TrainerConfig quiet() {
  return pt::TrainerConfig().progress(pt::ProgressMode::Silent).learning_rate(1e-2).loss("dpo").batch_size(2).seed(3);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<double> metric(const pt::TrainResult& r, const std::string& name) {
  std::vector<double> out;
  for (const auto& s : r.steps) out.push_back(s.metrics.count(name) ? s.metrics.at(name) : NAN);
  return out;
}

TEST(LossScaler, UnscalesDetectsOverflowBacksOffAndGrows) {
  pt::LossScaler scaler(8.0, 2.0, 0.5, /*growth_interval=*/2);
  auto p = torch::ones({3}).requires_grad_();
  p.mutable_grad() = torch::tensor({8.0, 16.0, -4.0});
  EXPECT_FALSE(scaler.unscale({p}));
  EXPECT_TRUE(p.grad().equal(torch::tensor({1.0, 2.0, -0.5})));
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 8.0);
  EXPECT_EQ(scaler.growth_tracker(), 1);
  scaler.update(false);  // the second clean step in a row grows the scale
  EXPECT_EQ(scaler.scale(), 16.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  p.mutable_grad() = torch::tensor({1.0, std::numeric_limits<double>::infinity(), 0.0});
  EXPECT_TRUE(scaler.unscale({p}));
  p.mutable_grad() = torch::tensor({std::numeric_limits<double>::quiet_NaN(), 0.0, 0.0});
  EXPECT_TRUE(scaler.unscale({p}));
  scaler.update(true);
  EXPECT_EQ(scaler.scale(), 8.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  expect_error([&] { scaler.set_state(0.0, 0); }, "loss scale must be finite and > 0, got 0");
  expect_error([] { pt::LossScaler(1.0, 0.5); }, "growth_factor must be > 1");
  expect_error([] { pt::mixed_precision_from_string("fp8"); },
               "unknown mixed_precision \"fp8\"; valid values: \"no\", \"bf16\", \"fp16\"");
  EXPECT_EQ(pt::cpu_mixed_precision_warning(pt::MixedPrecision::No), "");
  // Whether bf16 warns depends on the CPU; when it does, the line names the mode and the way out.
  for (const auto mode : {pt::MixedPrecision::BF16, pt::MixedPrecision::FP16}) {
    const std::string warning = pt::cpu_mixed_precision_warning(mode);
    if (!warning.empty()) {
      EXPECT_NE(warning.find("mixed_precision \"" + pt::to_string(mode) + "\" on a CPU without"), std::string::npos);
      EXPECT_NE(warning.find("use mixed_precision \"no\""), std::string::npos);
    }
  }
}

// bf16 and fp16 compute the same training run as fp32 up to their rounding: over 4 steps of DPO the losses agree
// within 2e-2 (bf16, 8 significant bits) and 4e-3 (fp16, 11 bits) absolute, around a loss of 0.69. The master
// weights and AdamW's moments stay float32.
TEST(MixedPrecision, Bf16AndFp16TrackTheFp32Run) {
  auto data = prefopt::testing::tiny_pairs(8);
  const auto config = quiet().max_steps(4);
  const auto fp32 = pt::Trainer(config, prefopt::testing::tiny_model(4), data).train();
  for (const auto& [mode, tolerance] : {std::pair{pt::MixedPrecision::BF16, 2e-2}, std::pair{pt::MixedPrecision::FP16, 4e-3}}) {
    auto model = prefopt::testing::tiny_model(4);
    pt::Trainer trainer(pt::TrainerConfig(config).mixed_precision(mode), model, data);
    const auto low = trainer.train();
    ASSERT_EQ(low.steps.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_NEAR(low.steps[i].metrics.at("loss"), fp32.steps[i].metrics.at("loss"), tolerance)
          << pt::to_string(mode) << " step " << i + 1;
    }
    // Not the fp32 run itself: the low-precision compute left a trace.
    EXPECT_NE(metric(low, "loss"), metric(fp32, "loss")) << pt::to_string(mode);
    for (const auto& p : model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
  }
}

// A loss scale far too large overflows the fp16 gradients: those steps are skipped (weights untouched), counted,
// and the scale halves until the gradients fit; training then proceeds.
TEST(MixedPrecision, Fp16OverflowSkipsTheStepAndCountsIt) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(4);
  auto model = prefopt::testing::tiny_model(5);
  std::vector<torch::Tensor> before;
  for (const auto& p : model->parameters()) before.push_back(p.detach().clone());
  auto config = quiet()
                    .max_steps(1)
                    .mixed_precision(pt::MixedPrecision::FP16)
                    .initial_loss_scale(1e30)
                    .logging_steps(1)
                    .output_dir(tmp / "run");
  const auto first = pt::Trainer(config, model, data).train();
  ASSERT_EQ(first.steps.size(), 1u);
  EXPECT_EQ(first.steps[0].metrics.count("grad_norm"), 0u) << "a skipped step has no gradient norm";
  EXPECT_EQ(first.steps[0].metrics.at("loss_scale"), 5e29);
  ASSERT_EQ(first.logs.size(), 1u);
  EXPECT_EQ(first.logs[0].metrics.at("skipped_steps"), 1.0);
  const auto after = model->parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(after[i].equal(before[i])) << "parameter " << i;
  const std::string metrics = read_file(tmp / "run/metrics.jsonl");
  EXPECT_NE(metrics.find("\"skipped_steps\":1"), std::string::npos) << metrics;

  // From a scale of 2^40 the halvings reach a scale the gradients fit in within a few steps; then the weights move.
  auto model2 = prefopt::testing::tiny_model(5);
  const auto run = pt::Trainer(pt::TrainerConfig(config).initial_loss_scale(std::ldexp(1.0, 40)).max_steps(40)
                                   .output_dir(""),
                               model2, data)
                       .train();
  const auto scales = metric(run, "loss_scale");
  int skipped = 0;
  for (const auto& s : run.steps) skipped += s.metrics.count("grad_norm") ? 0 : 1;
  EXPECT_GE(skipped, 1);
  EXPECT_LT(skipped, 40);
  EXPECT_LT(scales.back(), std::ldexp(1.0, 40));
  EXPECT_FALSE(model2->parameters()[0].equal(before[0]));
}

TEST(MixedPrecision, Fp16ResumeRepeatsTheUninterruptedRunExactly) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(8);
  // A growth interval is not configurable, so a scale that overflows at first exercises the saved scale and skips.
  auto config = quiet()
                    .max_steps(6)
                    .save_steps(3)
                    .mixed_precision(pt::MixedPrecision::FP16)
                    .initial_loss_scale(std::ldexp(1.0, 38))
                    .output_dir(tmp / "full");
  const auto full = pt::Trainer(config, prefopt::testing::tiny_model(6), data).train();
  ASSERT_EQ(full.steps.size(), 6u);
  torch::manual_seed(1234);
  const auto rest = pt::Trainer(pt::TrainerConfig(config).output_dir(tmp / "resumed").resume_from(tmp / "full/checkpoint-3"),
                                prefopt::testing::tiny_model(77), data)
                        .train();
  ASSERT_EQ(rest.steps.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rest.steps[i].metrics.at("loss"), full.steps[3 + i].metrics.at("loss")) << "step " << 4 + i;
    EXPECT_EQ(rest.steps[i].metrics.at("loss_scale"), full.steps[3 + i].metrics.at("loss_scale")) << "step " << 4 + i;
  }
}

TEST(MixedPrecision, GradientCheckpointingTrainsTheSameRun) {
  auto data = prefopt::testing::tiny_pairs(6);
  for (const bool fused : {false, true}) {
    const auto config = quiet().max_steps(3).fused_linear_logps(fused);
    const auto plain = pt::Trainer(config, prefopt::testing::tiny_model(7), data).train();
    auto model = prefopt::testing::tiny_model(7);
    const auto ckpt = pt::Trainer(pt::TrainerConfig(config).gradient_checkpointing(true), model, data).train();
    EXPECT_TRUE(model->gradient_checkpointing());
    for (size_t i = 0; i < 3; ++i) {
      const double loss = plain.steps[i].metrics.at("loss"), norm = plain.steps[i].metrics.at("grad_norm");
      EXPECT_NEAR(ckpt.steps[i].metrics.at("loss"), loss, 1e-6 * std::abs(loss)) << "step " << i;
      EXPECT_NEAR(ckpt.steps[i].metrics.at("grad_norm"), norm, 1e-6 * norm) << "step " << i;
    }
  }
}

TEST(MixedPrecision, FinalModelIsSavedInSaveDtypeAndCheckpointsKeepTheMasterWeights) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(4);
  pt::Trainer(quiet().max_steps(1).output_dir(tmp / "run").mixed_precision(pt::MixedPrecision::BF16)
                  .save_dtype(torch::kBFloat16),
              prefopt::testing::tiny_model(8), data)
      .train();
  const prefopt::safetensors::File final_weights(tmp / "run/final/model.safetensors");
  EXPECT_EQ(final_weights.entry("model.embed_tokens.weight").dtype, "BF16");
  EXPECT_NE(read_file(tmp / "run/final/config.json").find("\"dtype\": \"bfloat16\""),
            std::string::npos);
  const prefopt::safetensors::File checkpoint(tmp / "run/checkpoint-1/model/model.safetensors");
  EXPECT_EQ(checkpoint.entry("model.embed_tokens.weight").dtype, "F32");
}

TEST(MixedPrecision, ErrorsNameTheProblem) {
  auto data = prefopt::testing::tiny_pairs(2);
  auto model = prefopt::testing::tiny_model(9);
  model->to(torch::kBFloat16);
  expect_error([&] { pt::Trainer(quiet().mixed_precision(pt::MixedPrecision::BF16), model, data); },
               "mixed_precision \"bf16\" keeps float32 master weights and computes in bf16; the model's parameter "
               "model.embed_tokens.weight is BFloat16");
  const auto parse = [](const std::string& training) {
    return [training] {
      pt::parse_run_config(R"({"model": {"path": "m"}, "tokenizer": {"type": "byte"}, "data": {"train": "t.jsonl"},
                               "training": )" + training + "}",
                           "run.json");
    };
  };
  expect_error(parse(R"({"mixed_precision": "fp8"})"),
               "run.json: training.mixed_precision: unknown mixed_precision \"fp8\"");
  expect_error(parse(R"({"initial_loss_scale": -1})"), "run.json: training.initial_loss_scale: expected a finite number > 0");
  expect_error(parse(R"({"gradient_checkpointing": "yes"})"), "training.gradient_checkpointing");
  const auto run = pt::parse_run_config(
      R"({"model": {"path": "m", "save_dtype": "bfloat16"}, "tokenizer": {"type": "byte"}, "data": {"train": "t.jsonl"},
          "training": {"mixed_precision": "fp16", "gradient_checkpointing": true, "initial_loss_scale": 1024}})",
      "run.json");
  EXPECT_EQ(run.trainer.mixed_precision(), pt::MixedPrecision::FP16);
  EXPECT_TRUE(run.trainer.gradient_checkpointing());
  EXPECT_EQ(run.trainer.initial_loss_scale(), 1024.0);
  EXPECT_EQ(run.trainer.save_dtype(), std::optional<torch::Dtype>(torch::kBFloat16));
}

}  // namespace
