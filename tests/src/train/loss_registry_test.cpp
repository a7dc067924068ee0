// Tests of the loss registry: its documentation and example configs cannot drift from the option declarations,
// its errors name the loss and the valid choices, and its entries call the loss they name with the scores and
// options they were given.
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include <prefopt/losses/listwise.h>
#include <prefopt/losses/pairwise.h>
#include <prefopt/losses/unpaired.h>
#include <prefopt/train/config.h>
#include <prefopt/train/loss_registry.h>

#include "support/expect_error.h"

namespace pt = prefopt::train;
using prefopt::testing::expect_error;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string kSource = PREFOPT_SOURCE_DIR;

pt::ListScores list_scores() {
  pt::ListScores s;
  s.policy = torch::tensor({{-3.0, -4.0, -6.5}, {-2.0, -1.0, 0.0}}, torch::kFloat32);
  s.ref = torch::tensor({{-3.5, -3.0, -6.0}, {-2.5, -1.0, 0.0}}, torch::kFloat32);
  s.lengths = torch::tensor({{3.0, 4.0, 5.0}, {2.0, 2.0, 1.0}}, torch::kFloat32);
  s.labels = torch::tensor({{2.0, 1.0, 0.0}, {0.0, 1.0, 0.0}}, torch::kFloat32);
  s.mask = torch::tensor({{true, true, true}, {true, true, false}});
  return s;
}

}  // namespace

TEST(TrainLossRegistry, DocsTableIsGeneratedFromTheDeclarations) {
  const std::string doc = read_text(kSource + "/docs/training.md");
  const std::string begin = "<!-- loss-options:begin -->\n", end = "<!-- loss-options:end -->";
  const size_t a = doc.find(begin), b = doc.find(end);
  ASSERT_NE(a, std::string::npos) << "docs/training.md lacks " << begin;
  ASSERT_NE(b, std::string::npos) << "docs/training.md lacks " << end;
  EXPECT_EQ(doc.substr(a + begin.size(), b - a - begin.size()), pt::loss_options_markdown())
      << "docs/training.md's loss options differ from the declarations; regenerate the section between the markers "
         "with build/examples/prefopt-train --loss_options";
}

TEST(TrainLossRegistry, EveryLossHasAnExampleConfigOfItsFormat) {
  for (const auto& info : pt::registered_loss_infos()) {
    SCOPED_TRACE(info.name);
    const std::string path = kSource + "/examples/configs/" + info.name + ".json";
    const pt::RunConfig run = pt::load_run_config(path);  // also checks its options against the declaration
    EXPECT_EQ(run.trainer.loss(), info.name);
    if (info.format == pt::DataFormat::Completions) {
      EXPECT_TRUE(run.format == pt::DataFormat::Completions || run.format == pt::DataFormat::Pairwise);
    } else {
      EXPECT_EQ(run.format, info.format);
    }
    EXPECT_FALSE(run.eval_file.empty()) << "the CI smoke run checks the evaluation";
  }
}

TEST(TrainLossRegistry, OptionKeysAreTheDeclaredOnes) {
  std::set<std::string> dpo;
  for (const auto& k : pt::loss_option_keys("dpo")) dpo.insert(k);
  for (const auto& spec : prefopt::option_specs<prefopt::DPOLossOptions>()) EXPECT_TRUE(dpo.count(spec.name));
  EXPECT_TRUE(dpo.count("use_weighting"));
  EXPECT_TRUE(dpo.count("ld_alpha"));
  std::vector<std::string> ranklist;
  for (const auto& spec : prefopt::option_specs<prefopt::RankListLossOptions>()) ranklist.push_back(spec.name);
  std::sort(ranklist.begin(), ranklist.end());
  EXPECT_EQ(pt::loss_option_keys("ranklist"), ranklist);
}

TEST(TrainLossRegistry, UnknownNamesAndOptionsListTheValidOnes) {
  expect_error([] { pt::make_objective("dpoo"); }, "unknown loss \"dpoo\"; valid losses: \"all_pairs\"");
  expect_error([] { pt::make_objective("dpo", {{"bta", 0.1}}); },
               "loss \"dpo\": unknown option \"bta\"; valid options: ");
  expect_error([] { pt::make_objective("dpo", {{"beta", "high"}}); },
               "loss \"dpo\": option \"beta\" must be a number, got string");
  expect_error([] { pt::make_objective("dpo", {{"loss_type", "sigmod"}}); },
               "loss \"dpo\": option \"loss_type\" must be one of: sigmoid, hinge");
  expect_error([] { pt::make_objective("dpo", {{"ld_alpha", 0.0}}); }, "option \"ld_alpha\" must be in (0, 1]");
  expect_error([] { pt::make_objective("dpo", {{"use_weighting", true}, {"loss_type", "aot"}}); },
               "option \"use_weighting\" (WPO) does not apply to loss_type aot");
  expect_error([] { pt::make_objective("irpo", {{"weighting", "ndcg"}}); },
               "loss \"irpo\": option \"weighting\" must be one of: dcg, discount, linear_discount, uniform; got 'ndcg'");
  expect_error([] { pt::make_objective("sft", {{"beta", 1.0}}); }, "valid options: none");
  EXPECT_EQ(pt::make_objective("dpo", {{"beta", 1}})->name(), "dpo");  // an integer where a real is expected
}

TEST(TrainLossRegistry, ObjectivesRejectScoresOfAnotherShape) {
  auto dpo = pt::make_objective("dpo");
  expect_error([&] { dpo->compute(list_scores()); }, "loss \"dpo\": trains on pairwise data");
}

TEST(TrainLossRegistry, ListEntriesCallTheirLossWithTheGivenOptions) {
  const auto s = list_scores();
  {
    auto objective = pt::make_objective("irpo", {{"beta", 0.5}, {"weighting", "discount"}, {"length_normalize", true}});
    EXPECT_TRUE(objective->needs().reference);
    const auto expected = prefopt::functional::irpo_loss(
        s.policy, s.ref, s.labels, s.mask, s.lengths,
        prefopt::IRPOLossOptions().beta(0.5).weighting(prefopt::kDiscount).length_normalize(true));
    EXPECT_TRUE(torch::equal(objective->compute(s).losses, expected.losses));
  }
  {
    auto objective = pt::make_objective("ranklist", {{"form", "logsumexp"}, {"window", 1}, {"reference_free", true}});
    EXPECT_FALSE(objective->needs().reference);
    const auto expected = prefopt::functional::ranklist_loss(
        s.policy, s.ref, s.labels, s.mask,
        prefopt::RankListLossOptions().form(prefopt::kLogSumExp).window(1).reference_free(true));
    EXPECT_TRUE(torch::equal(objective->compute(s).losses, expected.losses));
  }
  {
    // Ranks in the data reach the loss as ranks.
    auto ranked = s;
    ranked.labels = torch::tensor({{1.0, 2.0, 3.0}, {2.0, 1.0, 0.0}}, torch::kFloat32);
    ranked.labels_are_ranks = true;
    auto objective = pt::make_objective("all_pairs");
    const auto expected = prefopt::functional::all_pairs_loss(ranked.policy, ranked.ref, ranked.labels, ranked.mask,
                                                              prefopt::AllPairsLossOptions().labels(prefopt::kRanks));
    EXPECT_TRUE(torch::equal(objective->compute(ranked).losses, expected.losses));
  }
}

TEST(TrainLossRegistry, DpoScoringOptionsReachTheTrainer) {
  auto plain = pt::make_objective("dpo");
  EXPECT_FALSE(plain->needs().wpo_weights);
  EXPECT_EQ(plain->needs().ld_alpha, 1.0);
  auto wpo = pt::make_objective("dpo", {{"use_weighting", true}, {"ld_alpha", 0.5}, {"beta", 0.2}});
  EXPECT_TRUE(wpo->needs().wpo_weights);
  EXPECT_EQ(wpo->needs().ld_alpha, 0.5);
  pt::PairScores s;
  s.policy_chosen = torch::tensor({-1.0, -2.0});
  s.policy_rejected = torch::tensor({-3.0, -1.5});
  s.ref_chosen = torch::tensor({-1.5, -2.0});
  s.ref_rejected = torch::tensor({-2.5, -2.0});
  expect_error([&] { wpo->compute(s); }, "needs WPO weights");
  s.weights = torch::tensor({0.5, 1.0});
  const auto out = wpo->compute(s);
  const auto expected = prefopt::functional::dpo_loss(s.policy_chosen, s.policy_rejected, s.ref_chosen, s.ref_rejected,
                                                      prefopt::DPOLossOptions().beta(0.2),
                                                      prefopt::DPOLossInputs().weights(s.weights));
  EXPECT_TRUE(torch::equal(out.losses, expected.losses));
}

// Data parallel: the trainer all-reduces KTO's KL baseline and hands it over in UnpairedScores::kl; the objective
// must then use it instead of its own micro-batch's mean.
TEST(TrainLossRegistry, KtoTakesTheAllReducedKlBaselineWhenGiven) {
  torch::manual_seed(4);
  pt::UnpairedScores s;
  s.policy = torch::randn({4}, torch::kFloat64);
  s.ref = torch::randn({4}, torch::kFloat64);
  s.desirable = torch::tensor({true, false, true, false});
  s.policy_kl = torch::randn({4}, torch::kFloat64);
  s.ref_kl = s.policy_kl - 0.3;  // this micro-batch's own baseline: 0.3
  auto kto = pt::make_objective("kto");
  const auto options = prefopt::KTOLossOptions();
  const double local = kto->compute(s).loss.item<double>();
  EXPECT_NEAR(local,
              prefopt::functional::kto_loss(s.policy, s.ref, s.desirable, options,
                                            prefopt::KTOLossInputs().kl(torch::tensor(0.3, torch::kFloat64)))
                  .loss.item<double>(),
              1e-12);
  s.kl = torch::tensor(0.8, torch::kFloat64);  // the global batch's baseline
  const double global = kto->compute(s).loss.item<double>();
  EXPECT_NEAR(global,
              prefopt::functional::kto_loss(s.policy, s.ref, s.desirable, options, prefopt::KTOLossInputs().kl(s.kl))
                  .loss.item<double>(),
              1e-12);
  EXPECT_GT(std::abs(global - local), 1e-6);
}
