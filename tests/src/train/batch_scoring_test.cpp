// Tests of batch scoring: each field of the typed scores against the same quantity computed by hand from the model's
// logits in float64 (log-softmax gathered at the labels), KTO's mismatched pairs taken within the micro-batch, WPO's
// weights and LD-DPO's tails from their formulas, and the precomputed table equal to live reference scores.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <prefopt/train/batch_scoring.h>

#include "support/expect_error.h"
#include "train_test_util.h"

namespace pt = prefopt::train;
using prefopt::testing::expect_error;

namespace {

// log p(completion | prompt) under `model`, in float64, from the logits of prompt + completion.
double sequence_logp(prefopt::LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                     const std::vector<int64_t>& completion, std::vector<double>* token_logps = nullptr) {
  torch::NoGradGuard guard;
  std::vector<int64_t> ids = prompt;
  ids.insert(ids.end(), completion.begin(), completion.end());
  auto input = torch::tensor(ids, torch::kLong).unsqueeze(0);
  auto logits = model->forward(input, torch::ones_like(input)).squeeze(0).to(torch::kFloat64);
  auto logp = torch::log_softmax(logits, -1);
  double total = 0.0;
  for (size_t j = 0; j < completion.size(); ++j) {
    const int64_t pos = static_cast<int64_t>(prompt.size() + j) - 1;
    const double lp = logp[pos][completion[j]].item<double>();
    if (token_logps) token_logps->push_back(lp);
    total += lp;
  }
  return total;
}

// WPO's per-sequence log-weight from the formula: mean over completion tokens of log p_t - log sum_v p_v^2.
double wpo_log_weight(prefopt::LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                      const std::vector<int64_t>& completion) {
  torch::NoGradGuard guard;
  std::vector<int64_t> ids = prompt;
  ids.insert(ids.end(), completion.begin(), completion.end());
  auto input = torch::tensor(ids, torch::kLong).unsqueeze(0);
  auto logp = torch::log_softmax(model->forward(input, torch::ones_like(input)).squeeze(0).to(torch::kFloat64), -1);
  double sum = 0.0;
  for (size_t j = 0; j < completion.size(); ++j) {
    const int64_t pos = static_cast<int64_t>(prompt.size() + j) - 1;
    sum += logp[pos][completion[j]].item<double>() - torch::logsumexp(2 * logp[pos], 0).item<double>();
  }
  return sum / static_cast<double>(completion.size());
}

pt::BatchScorer scorer(pt::ScoringNeeds needs) {
  pt::ScoringConfig config;
  config.pad_token_id = prefopt::data::ByteTokenizer::kPadId;
  return pt::BatchScorer(config, needs);
}

}  // namespace

TEST(TrainBatchScoring, PairsMatchHandComputedLogProbs) {
  auto policy = prefopt::testing::tiny_model(1), ref = prefopt::testing::tiny_model(2);
  const auto data = prefopt::testing::tiny_pairs(5);
  pt::ScoringNeeds needs;
  needs.reference = true;
  const auto s = std::get<pt::PairScores>(scorer(needs).score(policy, &ref, torch::Tensor(), data, {3, 1}));
  const std::vector<int64_t> idx = {3, 1};
  for (size_t i = 0; i < idx.size(); ++i) {
    const auto& p = data.pairs[static_cast<size_t>(idx[i])];
    const auto k = static_cast<int64_t>(i);
    EXPECT_NEAR(s.policy_chosen[k].item<double>(), sequence_logp(policy, p.prompt, p.chosen), 1e-4);
    EXPECT_NEAR(s.policy_rejected[k].item<double>(), sequence_logp(policy, p.prompt, p.rejected), 1e-4);
    EXPECT_NEAR(s.ref_chosen[k].item<double>(), sequence_logp(ref, p.prompt, p.chosen), 1e-4);
    EXPECT_NEAR(s.ref_rejected[k].item<double>(), sequence_logp(ref, p.prompt, p.rejected), 1e-4);
    EXPECT_EQ(s.chosen_lengths[k].item<double>(), static_cast<double>(p.chosen.size()));
  }
  EXPECT_TRUE(s.policy_chosen.requires_grad());
  EXPECT_FALSE(s.ref_chosen.requires_grad());
  EXPECT_FALSE(s.weights.defined());
}

TEST(TrainBatchScoring, WpoWeightsAndLdDpoTailsFollowTheirFormulas) {
  auto policy = prefopt::testing::tiny_model(1), ref = prefopt::testing::tiny_model(2);
  const auto data = prefopt::testing::tiny_pairs(4);
  pt::ScoringNeeds needs;
  needs.reference = true;
  needs.wpo_weights = true;
  needs.ld_alpha = 0.25;
  const auto s = std::get<pt::PairScores>(scorer(needs).score(policy, &ref, torch::Tensor(), data, {0, 2}));
  const std::vector<int64_t> idx = {0, 2};
  for (size_t i = 0; i < idx.size(); ++i) {
    const auto& p = data.pairs[static_cast<size_t>(idx[i])];
    const auto k = static_cast<int64_t>(i);
    // WPO: W = min(1, exp(w_c + w_r)).
    const double w = std::min(1.0, std::exp(wpo_log_weight(policy, p.prompt, p.chosen) +
                                            wpo_log_weight(policy, p.prompt, p.rejected)));
    EXPECT_NEAR(s.weights[k].item<double>(), w, 1e-5);
    EXPECT_FALSE(s.weights.requires_grad());
    // LD-DPO: tokens past the shorter response count alpha times, for the policy and the reference alike.
    for (auto* m : {&policy, &ref}) {
      std::vector<double> tc, tr;
      sequence_logp(*m, p.prompt, p.chosen, &tc);
      sequence_logp(*m, p.prompt, p.rejected, &tr);
      const size_t l = std::min(tc.size(), tr.size());
      auto ld = [&](const std::vector<double>& t) {
        double sum = 0.0;
        for (size_t j = 0; j < t.size(); ++j) sum += j < l ? t[j] : 0.25 * t[j];
        return sum;
      };
      const auto& chosen = m == &policy ? s.policy_chosen : s.ref_chosen;
      const auto& rejected = m == &policy ? s.policy_rejected : s.ref_rejected;
      EXPECT_NEAR(chosen[k].item<double>(), ld(tc), 1e-4);
      EXPECT_NEAR(rejected[k].item<double>(), ld(tr), 1e-4);
    }
  }
}

TEST(TrainBatchScoring, KtoPairsMismatchCompletionsWithinTheMicroBatch) {
  auto policy = prefopt::testing::tiny_model(1), ref = prefopt::testing::tiny_model(2);
  const auto data = prefopt::testing::tiny_unpaired(6);
  pt::ScoringNeeds needs;
  needs.reference = true;
  needs.kl_pairs = true;
  const std::vector<int64_t> idx = {4, 1, 5};
  const auto s = std::get<pt::UnpairedScores>(scorer(needs).score(policy, &ref, torch::Tensor(), data, idx));
  for (size_t i = 0; i < idx.size(); ++i) {
    // Example i of the micro-batch pairs its prompt with the completion of example i - 1 (mod B) of the same batch,
    // whatever the dataset order (TRL's rotation of the KL dataset by one).
    const auto& own = data.unpaired[static_cast<size_t>(idx[i])];
    const auto& other = data.unpaired[static_cast<size_t>(idx[(i + idx.size() - 1) % idx.size()])];
    const auto k = static_cast<int64_t>(i);
    EXPECT_NEAR(s.policy_kl[k].item<double>(), sequence_logp(policy, own.prompt, other.completion), 1e-4);
    EXPECT_NEAR(s.ref_kl[k].item<double>(), sequence_logp(ref, own.prompt, other.completion), 1e-4);
    EXPECT_NEAR(s.policy[k].item<double>(), sequence_logp(policy, own.prompt, own.completion), 1e-4);
  }
  EXPECT_FALSE(s.policy_kl.requires_grad());
}

TEST(TrainBatchScoring, ReferenceTableEqualsLiveReference) {
  auto policy = prefopt::testing::tiny_model(1), ref = prefopt::testing::tiny_model(2);
  const auto lists = prefopt::testing::tiny_lists(5);
  pt::ScoringNeeds needs;
  needs.reference = true;
  const auto sc = scorer(needs);
  const auto table = sc.reference_table(ref, lists, 2);
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{5, 3}));
  const auto live = std::get<pt::ListScores>(sc.score(policy, &ref, torch::Tensor(), lists, {2, 3}));
  const auto cached = std::get<pt::ListScores>(sc.score(policy, nullptr, table, lists, {2, 3}));
  EXPECT_TRUE(torch::allclose(live.ref, cached.ref, 1e-6, 1e-5));
  needs.kl_pairs = true;
  expect_error([&] { scorer(needs).reference_table(ref, prefopt::testing::tiny_unpaired(4), 2); },
               "cannot be precomputed");
}

TEST(TrainBatchScoring, JointPairsScorePromptAndResponseTogether) {
  auto policy = prefopt::testing::tiny_model(1), ref = prefopt::testing::tiny_model(2);
  const auto data = prefopt::testing::tiny_joint(4);
  pt::ScoringNeeds needs;
  needs.reference = true;
  const auto s = std::get<pt::JointScores>(scorer(needs).score(policy, &ref, torch::Tensor(), data, {2, 0}));
  const std::vector<int64_t> idx = {2, 0};
  // log pi(x) + log pi(y | x): every token after the first, of prompt and response alike.
  auto joint = [](prefopt::LlamaForCausalLM& m, const std::vector<int64_t>& x, const std::vector<int64_t>& y) {
    std::vector<int64_t> rest(x.begin() + 1, x.end());
    rest.insert(rest.end(), y.begin(), y.end());
    return sequence_logp(m, {x.front()}, rest);
  };
  for (size_t i = 0; i < idx.size(); ++i) {
    const auto& e = data.joint[static_cast<size_t>(idx[i])];
    const auto k = static_cast<int64_t>(i);
    EXPECT_NEAR(s.policy_chosen[k].item<double>(), joint(policy, e.chosen_prompt, e.chosen), 1e-4);
    EXPECT_NEAR(s.policy_rejected[k].item<double>(), joint(policy, e.rejected_prompt, e.rejected), 1e-4);
    EXPECT_NEAR(s.ref_rejected[k].item<double>(), joint(ref, e.rejected_prompt, e.rejected), 1e-4);
  }
  // The precomputed table holds the same joint scores.
  const auto table = scorer(needs).reference_table(ref, data, 3);
  const auto cached = std::get<pt::JointScores>(scorer(needs).score(policy, nullptr, table, data, {2, 0}));
  EXPECT_TRUE(torch::allclose(cached.ref_chosen, s.ref_chosen, 1e-6, 1e-5));
}

TEST(TrainBatchScoring, StepScoresAreMeansOverEachStepsTokens) {
  auto policy = prefopt::testing::tiny_model(1), ref = prefopt::testing::tiny_model(2);
  const auto data = prefopt::testing::tiny_step_lists(3);
  // Byte ids are unchanged by the cut; " a=1\n" is step 0, "b=2\n" step 1, "ok" and EOS step 2.
  EXPECT_EQ(data.lists[0].responses[0], prefopt::testing::ids(" a=1\nb=2\nok", false, true));
  EXPECT_EQ(data.step_ids[0][0],
            (std::vector<int64_t>{0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2}));
  pt::ScoringNeeds needs;
  needs.reference = needs.steps = true;
  const auto s = std::get<pt::ListScores>(scorer(needs).score(policy, &ref, torch::Tensor(), data, {0, 1}));
  ASSERT_EQ(s.policy_steps.sizes(), (std::vector<int64_t>{2, 3, 3}));
  ASSERT_EQ(s.step_embeddings.size(3), 16);
  for (int64_t i = 0; i < 2; ++i) {
    const auto& list = data.lists[static_cast<size_t>(i)];
    for (size_t k = 0; k < list.responses.size(); ++k) {
      std::vector<double> tokens;
      sequence_logp(policy, list.prompt, list.responses[k], &tokens);
      const auto& steps = data.step_ids[static_cast<size_t>(i)][k];
      for (int64_t step = 0; step < 3; ++step) {
        double sum = 0.0;
        int count = 0;
        for (size_t j = 0; j < steps.size(); ++j) {
          if (steps[j] == step) sum += tokens[j], ++count;
        }
        EXPECT_EQ(s.step_mask[i][static_cast<int64_t>(k)][step].item<bool>(), count > 0);
        if (count > 0) {
          EXPECT_NEAR(s.policy_steps[i][static_cast<int64_t>(k)][step].item<double>(), sum / count, 1e-4);
        }
      }
    }
  }
  EXPECT_TRUE(s.policy_steps.requires_grad());
  EXPECT_FALSE(s.ref_steps.requires_grad());
}
