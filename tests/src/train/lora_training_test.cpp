// Tests of LoRA training in the Trainer: the reference is the policy with its adapters off (DPO's first loss is
// exactly log 2, and the reference log-probs equal the untouched base model's bit for bit after training), only the
// adapter moves, a LoRA DPO run on the shipped pairs learns (loss falls, reward accuracy rises), checkpoints and
// final/ hold PEFT adapter folders, merged/ a full checkpoint, resume is exact, and unsupported combinations are
// errors that say why.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include <prefopt/data/tokenizer.h>
#include <prefopt/scoring.h>
#include <prefopt/train/trainer.h>

#include "support/expect_error.h"
#include "support/temp_tree.h"
#include "train_test_util.h"

namespace pt = prefopt::train;
using prefopt::testing::expect_error;
using prefopt::testing::path_exists;
using prefopt::testing::TempTree;

namespace {

const std::string kSource = PREFOPT_SOURCE_DIR;

pt::TrainerConfig quiet() {
  return pt::TrainerConfig().progress(pt::ProgressMode::Silent).loss("dpo").batch_size(2).seed(3).learning_rate(1e-2);
}

prefopt::LoraConfig lora() { return prefopt::LoraConfig().r(4).alpha(8).target_modules({"all-linear"}); }

// Sequence log-probs of the chosen responses of `data` under `model` as it computes now.
torch::Tensor chosen_logps(prefopt::LlamaForCausalLMImpl& model, const pt::Dataset& data) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (const auto& pair : data.pairs) {
    std::vector<int64_t> seq = pair.prompt;
    seq.insert(seq.end(), pair.chosen.begin(), pair.chosen.end());
    const auto ids = torch::tensor(seq, torch::kLong).unsqueeze(0);
    auto labels = ids.clone();
    labels.slice(1, 0, static_cast<int64_t>(pair.prompt.size())).fill_(-100);
    const auto logits = model.forward(ids).slice(1, 0, -1);
    out.push_back(prefopt::sequence_logps(logits, labels.slice(1, 1)).logps);
  }
  return torch::cat(out);
}

TEST(TrainLora, ReferenceIsTheBaseModelAndOnlyTheAdapterMoves) {
  auto data = prefopt::testing::tiny_pairs(6);
  auto model = prefopt::testing::tiny_model(1);
  auto pristine = prefopt::testing::tiny_model(1);  // the same base weights, never trained
  std::vector<torch::Tensor> before;
  for (const auto& p : model->parameters()) before.push_back(p.detach().clone());
  pt::Trainer trainer(quiet().max_steps(4).lora(lora()), model, data);
  ASSERT_NE(trainer.lora(), nullptr);
  const auto result = trainer.train();
  // B starts at zero, so the policy starts as its reference: DPO's first loss is log 2.
  EXPECT_NEAR(result.steps[0].metrics.at("loss"), std::log(2.0), 1e-6);
  EXPECT_GT(std::abs(result.steps.back().metrics.at("loss") - std::log(2.0)), 1e-4);
  const auto after = model->parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(after[i].equal(before[i])) << "base parameter " << i;
  for (const auto& p : after) EXPECT_FALSE(p.requires_grad());
  // The reference (adapters off) is the base model exactly; the policy has moved.
  {
    prefopt::AdaptersDisabled off(*model);
    EXPECT_TRUE(chosen_logps(*model, data).equal(chosen_logps(*pristine, data)));
  }
  EXPECT_FALSE(chosen_logps(*model, data).equal(chosen_logps(*pristine, data)));
}

// The shipped pairs (examples/data/pairs_train.jsonl, byte tokenizer), a fresh tiny model, LoRA on every linear
// layer: DPO's loss falls and the reward accuracy rises.
TEST(TrainLora, DpoOnTheShippedPairsLearns) {
  prefopt::data::ByteTokenizer tok;
  auto data = pt::Dataset::read(kSource + "/examples/data/pairs_train.jsonl", pt::DataFormat::Pairwise, tok);
  auto model = prefopt::testing::tiny_model(2);
  pt::Trainer trainer(quiet().batch_size(4).max_steps(24).learning_rate(2e-2).lora(lora()).loss_options(
                          {{"beta", 0.5}}),
                      model, data);
  const auto before = trainer.evaluate(data);
  const auto result = trainer.train();
  const auto after = trainer.evaluate(data);
  EXPECT_LT(after.at("eval_loss"), before.at("eval_loss") - 0.1);
  EXPECT_GT(after.at("eval_rewards/accuracies"), before.at("eval_rewards/accuracies"));
  EXPECT_GE(after.at("eval_rewards/accuracies"), 0.75);
}

TEST(TrainLora, CheckpointsHoldAdaptersAndResumeIsExact) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(8);
  auto config = quiet()
                    .max_steps(6)
                    .save_steps(3)
                    .lora(prefopt::LoraConfig(lora()).dropout(0.1).modules_to_save({"embed_tokens"}))
                    .gradient_checkpointing(true)
                    .output_dir(tmp / "full");
  const auto full = pt::Trainer(config, prefopt::testing::tiny_model(3), data).train();
  for (const std::string dir : {"full/checkpoint-3/model", "full/final"}) {
    EXPECT_TRUE(path_exists(tmp / (dir + "/adapter_config.json"))) << dir;
    EXPECT_TRUE(path_exists(tmp / (dir + "/adapter_model.safetensors"))) << dir;
    EXPECT_FALSE(path_exists(tmp / (dir + "/model.safetensors"))) << dir;
  }
  EXPECT_FALSE(path_exists(tmp / "full/checkpoint-3/ref_model")) << "the reference is the policy: nothing to save";
  EXPECT_FALSE(path_exists(tmp / "full/merged"));

  torch::manual_seed(4321);
  const auto rest = pt::Trainer(pt::TrainerConfig(config).output_dir(tmp / "resumed").resume_from(tmp / "full/checkpoint-3"),
                                prefopt::testing::tiny_model(3), data)
                        .train();
  ASSERT_EQ(rest.steps.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rest.steps[i].metrics.at("loss"), full.steps[3 + i].metrics.at("loss")) << "step " << 4 + i;
    EXPECT_EQ(rest.steps[i].metrics.at("grad_norm"), full.steps[3 + i].metrics.at("grad_norm")) << "step " << 4 + i;
  }
  // The final adapter is the trained policy, and its merged form (tied embeddings: no modules_to_save) too.
  auto merging = pt::TrainerConfig(config).lora(prefopt::LoraConfig(lora()).dropout(0.1)).save_merged_model(true)
                     .output_dir(tmp / "merging").max_steps(2);
  pt::Trainer(merging, prefopt::testing::tiny_model(3), data).train();
  EXPECT_TRUE(path_exists(tmp / "merging/merged/model.safetensors"));
  EXPECT_TRUE(path_exists(tmp / "merging/merged/config.json"));
  auto merged = prefopt::load_llama(tmp / "merging/merged");
  auto policy = prefopt::testing::tiny_model(3);
  auto adapter = prefopt::LoraAdapter::load(policy, tmp / "merging/final");
  policy->eval();
  merged->eval();
  const auto ids = torch::tensor({{257, 'a', 'b', 'c'}}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_LT((merged->forward(ids) - policy->forward(ids)).abs().max().item<double>(), 1e-5);
}

TEST(TrainLora, UnsupportedCombinationsAreErrors) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(4);
  expect_error([&] { pt::Trainer(quiet().loss("reward").lora(lora()), prefopt::testing::tiny_model(5), data); },
               "lora: loss \"reward\" trains a head of its own next to the model");
  expect_error(
      [&] {
        pt::Trainer(quiet().lora(prefopt::LoraConfig(lora()).modules_to_save({"lm_head"})).save_merged_model(true),
                    prefopt::testing::tiny_model(5), data);
      },
      "lora.merge: the model ties lm_head to embed_tokens");
  pt::Trainer(quiet().max_steps(1).output_dir(tmp / "plain"), prefopt::testing::tiny_model(5), data).train();
  expect_error(
      [&] {
        pt::Trainer(quiet().max_steps(2).lora(lora()).resume_from(tmp / "plain/checkpoint-1"),
                    prefopt::testing::tiny_model(5), data)
            .train();
      },
      "holds no LoRA adapter (model/adapter_config.json), but this run trains one");
}

}  // namespace
