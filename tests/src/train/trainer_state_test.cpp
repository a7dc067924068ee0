// Tests of trainer_state.json: a state written and read back is the same, and every edit that would make a resumed
// run crash or silently train wrong (a bad order, an impossible position or step, a deep document) is an error
// naming the field; a resumed run with more steps extends the run with its schedule recomputed.
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include <prefopt/train/trainer.h>
#include <prefopt/train/trainer_state.h>

#include "support/expect_error.h"
#include "support/temp_tree.h"
#include "train_test_util.h"

namespace pt = prefopt::train;
using prefopt::testing::expect_error;
using prefopt::testing::TempTree;

namespace {

pt::RunIdentity identity() {
  pt::RunIdentity id;
  id.loss = "dpo";
  id.batch_size = 2;
  id.gradient_accumulation_steps = 1;
  id.dataset_size = 4;
  id.dataset_fingerprint = 12345;
  id.micro_batches_per_epoch = 2;
  id.total_steps = 10;
  return id;
}

pt::TrainerState state() {
  pt::TrainerState s;
  s.global_step = 3;
  s.epoch = 1;
  s.position = 1;
  s.order_ready = true;
  s.order = {2, 0, 3, 1};
  s.shuffle_rng.seed(9);
  s.shuffle_rng.discard(5);
  s.log_accumulator.add("loss", 0.5, 2.0);
  s.log_accumulated_steps = 1;
  return s;
}

// The JSON text with `from` replaced by `to` (once; the field must be there).
std::string edited(const std::string& from, const std::string& to) {
  std::string text = pt::trainer_state_json(state(), identity());
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

void expect_rejected(const std::string& text, const std::string& fragment) {
  expect_error([&] { pt::parse_trainer_state(text, "ckpt/trainer_state.json", identity()); }, fragment);
}

}  // namespace

TEST(TrainTrainerState, RoundTrips) {
  const auto saved = pt::parse_trainer_state(pt::trainer_state_json(state(), identity()), "s.json", identity());
  EXPECT_EQ(saved.total_steps, 10);
  EXPECT_EQ(saved.state.global_step, 3);
  EXPECT_EQ(saved.state.epoch, 1);
  EXPECT_EQ(saved.state.position, 1);
  EXPECT_EQ(saved.state.order, (std::vector<int64_t>{2, 0, 3, 1}));
  EXPECT_EQ(saved.state.shuffle_rng, state().shuffle_rng);
  EXPECT_EQ(saved.state.log_accumulator.means().at("loss"), 0.5);
  EXPECT_EQ(saved.state.log_accumulated_steps, 1);
}

TEST(TrainTrainerState, EditedFieldsAreErrorsNamingThem) {
  expect_rejected(edited("\"order\": [\n  2,", "\"order\": [\n  -1,"), "field \"order[0]\" is -1");
  expect_rejected(edited("\"order\": [\n  2,", "\"order\": [\n  0,"), "must be a permutation of 0..3");
  expect_rejected(edited("\"position\": 1", "\"position\": 1000000000"), "field \"position\" is 1000000000");
  expect_rejected(edited("\"global_step\": 3", "\"global_step\": -2"), "field \"global_step\" is -2");
  expect_rejected(edited("\"schedule_step\": 3", "\"schedule_step\": 1000000000000000"),
                  "field \"schedule_step\" is 1000000000000000; expected global_step (3)");
  expect_rejected(edited("\"epoch\": 1", "\"epoch\": \"one\""), "field \"epoch\" must be an integer");
  expect_rejected(edited("\"shuffle_rng\": \"", "\"shuffle_rng\": \"x"), "not a std::mt19937_64 state");
  expect_rejected(edited("\"dataset_size\": 4", "\"dataset_size\": 5"), "written with dataset_size = 5");
  expect_rejected(edited("\"log_accumulated_steps\": 1", "\"log_accumulated_steps\": 7"),
                  "field \"log_accumulated_steps\" is 7");
  expect_rejected("{\"global_step\": 1}", "missing field \"check\"");
  expect_rejected("[1, 2]", "expected a JSON object");
  // A deeply nested document is refused without recursing through it or printing it.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  expect_rejected(deep, "nesting deeper than 8 levels");
}

TEST(TrainTrainerState, NothingLeftToTrainIsAnError) {
  auto now = identity();
  now.total_steps = 3;
  expect_error([&] { pt::parse_trainer_state(pt::trainer_state_json(state(), identity()), "s.json", now); },
               "is at step 3 and this run stops at step 3");
}

TEST(TrainTrainerState, ResumingWithMoreStepsExtendsTheRun) {
  TempTree tmp;
  auto data = prefopt::testing::tiny_pairs(6);
  auto config = pt::TrainerConfig()
                    .progress(pt::ProgressMode::Silent)
                    .learning_rate(1e-2)
                    .loss("dpo")
                    .batch_size(2)
                    .max_steps(4)
                    .warmup_steps(1)
                    .output_dir(tmp / "run")
                    .seed(3);
  pt::Trainer(config, prefopt::testing::tiny_model(5), data).train();
  // The same run planned for 8 steps from the start, and the 4-step run resumed with max_steps 8.
  auto planned = pt::Trainer(pt::TrainerConfig(config).max_steps(8).output_dir(tmp / "planned"),
                             prefopt::testing::tiny_model(5), data)
                     .train();
  pt::Trainer resumed(pt::TrainerConfig(config).max_steps(8).output_dir(tmp / "resumed").resume_from(tmp / "run/checkpoint-4"),
                      prefopt::testing::tiny_model(5), data);
  testing::internal::CaptureStderr();
  const auto rest = resumed.train();
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("written by a run of 4 steps; this run has 8"), std::string::npos) << said;
  ASSERT_EQ(rest.steps.size(), 4u);
  EXPECT_EQ(rest.steps.front().step, 5);
  // From step 5 on, the schedule is the 8-step schedule: the same rates as the run planned for 8 steps.
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_DOUBLE_EQ(rest.steps[i].metrics.at("learning_rate"), planned.steps[4 + i].metrics.at("learning_rate"));
  }
}
