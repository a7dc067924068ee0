// Tests of DOVE's joint DPO loss and the joint scoring recipes (scoring_joint.h): labels that score the
// prompt but not the first token, with left and right padding; completion-only labels with the causal shift
// (the gather TPO's released code gets wrong); joint log-probs against a plain log-softmax loop; DOVE with
// equal prompts equals DPO on completions; step means for TPO; and bad input.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include <prefopt/losses/joint.h>
#include <prefopt/losses/pairwise.h>
#include <prefopt/scoring_joint.h>
#include "support/expect_error.h"
#include "support/gradcheck.h"
#include "support/lists.h"

namespace prefopt {
namespace {

namespace F = functional;

// A causal bigram "model": the logits at position t depend on token t only, logits[b, t] = table[ids[b, t]].
torch::Tensor bigram_logits(const torch::Tensor& table, const torch::Tensor& ids) {
  return table.index_select(0, ids.reshape({-1})).view({ids.size(0), ids.size(1), table.size(1)});
}

// log softmax(logits[b, t])[v], plainly.
double log_prob(const torch::Tensor& logits, int64_t b, int64_t t, int64_t v) {
  const auto row = logits[b][t];
  double m = -1e300, s = 0;
  for (int64_t i = 0; i < row.size(0); ++i) m = std::max(m, row[i].item<double>());
  for (int64_t i = 0; i < row.size(0); ++i) s += std::exp(row[i].item<double>() - m);
  return row[v].item<double>() - m - std::log(s);
}

TEST(JointScoring, JointLabelsScoreEveryAttendedTokenButTheFirst) {
  // Row 0 right-padded, row 1 left-padded.
  const torch::Tensor ids = torch::tensor({{5, 6, 7, 8, 0}, {0, 0, 3, 4, 9}});
  const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 0}, {0, 0, 1, 1, 1}});
  const torch::Tensor labels = joint_labels(ids, mask);
  const torch::Tensor expected = torch::tensor({{6, 7, 8, -100}, {-100, -100, 4, 9}});
  EXPECT_TRUE(torch::equal(labels, expected)) << labels;
  EXPECT_TRUE(torch::equal(joint_labels(ids), ids.slice(1, 1)));
  EXPECT_TRUE(torch::equal(joint_labels(ids, mask, -1).eq(-1), expected.eq(-100)));
}

TEST(JointScoring, CompletionLabelsLeaveOutThePrompt) {
  const torch::Tensor ids = torch::tensor({{5, 6, 7, 8, 0}, {1, 2, 3, 4, 9}});
  const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 0}, {1, 1, 1, 1, 1}});
  // Prompts: 2 tokens in row 0, 3 in row 1. Label t predicts token t + 1.
  const torch::Tensor labels = completion_labels(ids, mask, torch::tensor({2, 3}));
  EXPECT_TRUE(torch::equal(labels, torch::tensor({{-100, 7, 8, -100}, {-100, -100, 4, 9}}))) << labels;
}

TEST(JointScoring, JointLogpsMatchAPlainShiftedLogSoftmax) {
  torch::manual_seed(1);
  const int64_t V = 6;
  const torch::Tensor table = torch::randn({V, V}, torch::kDouble);
  const torch::Tensor ids = torch::tensor({{1, 2, 3, 4}, {0, 5, 2, 1}});
  const torch::Tensor mask = torch::tensor({{1, 1, 1, 1}, {0, 1, 1, 1}});
  const torch::Tensor logits = bigram_logits(table, ids);
  const auto out = joint_sequence_logps(logits, ids, mask);
  for (int64_t b = 0; b < 2; ++b) {
    double want = 0;
    for (int64_t t = 0; t + 1 < 4; ++t) {
      if (mask[b][t].item<int64_t>() && mask[b][t + 1].item<int64_t>()) want += log_prob(logits, b, t, ids[b][t + 1].item<int64_t>());
    }
    EXPECT_NEAR(out.logps[b].item<double>(), want, 1e-12);
  }
  EXPECT_EQ(out.token_logps.size(1), 3);
}

TEST(JointScoring, CompletionGatherIsShiftedUnlikeTPOsReleasedCode) {
  // Token t + 1 is predicted by the logits at t. The released TPO code gathers logits[t] at ids[t] (no shift),
  // which scores each token by the distribution that saw it; prefopt's labels carry the shift.
  torch::manual_seed(2);
  const int64_t V = 5;
  const torch::Tensor table = torch::randn({V, V}, torch::kDouble);
  const torch::Tensor ids = torch::tensor({{0, 1, 2, 3, 4}});
  const torch::Tensor logits = bigram_logits(table, ids);
  const torch::Tensor labels = completion_labels(ids, {}, torch::tensor({2}));
  const double got = sequence_logps(logits.slice(1, 0, 4), labels).logps.item<double>();
  double shifted = 0, unshifted = 0;
  for (int64_t t = 2; t < 5; ++t) {
    shifted += log_prob(logits, 0, t - 1, ids[0][t].item<int64_t>());
    unshifted += log_prob(logits, 0, t, ids[0][t].item<int64_t>());
  }
  EXPECT_NEAR(got, shifted, 1e-12);
  EXPECT_GT(std::abs(got - unshifted), 1e-3);
}

TEST(JointDPOLoss, EqualPromptsGiveDPOOnCompletions) {
  torch::manual_seed(3);
  const int64_t V = 8;
  const torch::Tensor policy = torch::randn({V, V}, torch::kDouble), reference = torch::randn({V, V}, torch::kDouble);
  // Two pairs; each pair shares its prompt (3 tokens), responses differ; row lengths differ (right padding).
  const torch::Tensor chosen = torch::tensor({{1, 2, 3, 4, 5, 6}, {7, 1, 2, 2, 3, 0}});
  const torch::Tensor rejected = torch::tensor({{1, 2, 3, 6, 0, 0}, {7, 1, 2, 5, 5, 4}});
  const torch::Tensor mask_c = torch::tensor({{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0}});
  const torch::Tensor mask_r = torch::tensor({{1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}});
  const torch::Tensor prompt = torch::tensor({3, 3});
  auto joint = [&](const torch::Tensor& table, const torch::Tensor& ids, const torch::Tensor& mask) {
    return joint_sequence_logps(bigram_logits(table, ids), ids, mask).logps;
  };
  auto completion = [&](const torch::Tensor& table, const torch::Tensor& ids, const torch::Tensor& mask) {
    return sequence_logps(bigram_logits(table, ids).slice(1, 0, 5), completion_labels(ids, mask, prompt)).logps;
  };
  const auto dove = F::joint_dpo_loss(joint(policy, chosen, mask_c), joint(policy, rejected, mask_r),
                                      joint(reference, chosen, mask_c), joint(reference, rejected, mask_r),
                                      JointDPOLossOptions().beta(0.5).reduction(torch::kNone));
  const auto dpo = F::dpo_loss(completion(policy, chosen, mask_c), completion(policy, rejected, mask_r),
                               completion(reference, chosen, mask_c), completion(reference, rejected, mask_r),
                               DPOLossOptions().beta(0.5).reduction(torch::kNone));
  EXPECT_LT((dove.losses - dpo.losses).abs().max().item<double>(), 1e-12);
  // Different prompts: the prompt terms no longer cancel.
  torch::Tensor other = rejected.clone();
  other[0][1] = 4;
  const auto differs = F::joint_dpo_loss(joint(policy, chosen, mask_c), joint(policy, other, mask_r),
                                         joint(reference, chosen, mask_c), joint(reference, other, mask_r),
                                         JointDPOLossOptions().beta(0.5).reduction(torch::kNone));
  EXPECT_GT(std::abs(differs.losses[0].item<double>() - dpo.losses[0].item<double>()), 1e-6);
}

TEST(JointDPOLoss, MatchesTheFormulaAndGradchecks) {
  torch::manual_seed(4);
  std::vector<torch::Tensor> in;
  for (int i = 0; i < 4; ++i) in.push_back((torch::randn({6}, torch::kDouble) * 5 - 60).requires_grad_());
  const auto out = F::joint_dpo_loss(in[0], in[1], in[2], in[3], JointDPOLossOptions().beta(0.2).reduction(torch::kNone));
  for (int64_t i = 0; i < 6; ++i) {
    const double z = 0.2 * ((in[0][i].item<double>() - in[2][i].item<double>()) - (in[1][i].item<double>() - in[3][i].item<double>()));
    EXPECT_NEAR(out.losses[i].item<double>(), -testing::log_sigmoid_ref(z), 1e-12);
  }
  EXPECT_EQ(out.metrics.count("rewards/accuracies"), 1u);
  testing::expect_gradcheck(
      [](const std::vector<torch::Tensor>& x) {
        return F::joint_dpo_loss(x[0], x[1], x[2], x[3], JointDPOLossOptions().beta(0.3).reduction(torch::kNone)).losses;
      },
      in);
  JointDPOLoss module(JointDPOLossOptions().beta(0.2));
  EXPECT_TRUE(torch::equal(module(in[0], in[1], in[2], in[3]).loss, F::joint_dpo_loss(in[0], in[1], in[2], in[3], module->options).loss));
  const auto low = F::joint_dpo_loss(in[0].detach().to(torch::kBFloat16), in[1].detach().to(torch::kBFloat16),
                                     in[2].detach().to(torch::kBFloat16), in[3].detach().to(torch::kBFloat16));
  EXPECT_EQ(low.losses.scalar_type(), torch::kBFloat16);
}

TEST(JointDPOLoss, ExtremeJointLogpsStayFinite) {
  // Joint log-probs include the prompt, so they run larger than completion ones.
  const torch::Tensor pc = torch::tensor({1e4, -1e4, 0.0}).requires_grad_();
  const torch::Tensor pr = torch::tensor({-1e4, 1e4, 0.0}), zero = torch::zeros({3});
  const auto out = F::joint_dpo_loss(pc, pr, zero, zero, JointDPOLossOptions().beta(1.0).reduction(torch::kSum));
  EXPECT_TRUE(out.losses.isfinite().all().item<bool>());
  out.loss.backward();
  EXPECT_TRUE(pc.grad().isfinite().all().item<bool>());
  EXPECT_NEAR(out.losses[1].item<double>(), 2e4, 1.0);
}

TEST(StepMeans, MatchPlainLoopsAndCarryGradients) {
  torch::manual_seed(5);
  const torch::Tensor values = torch::randn({2, 6}, torch::kDouble).requires_grad_();
  const torch::Tensor hidden = torch::randn({2, 6, 3}, torch::kDouble);
  const torch::Tensor ids = torch::tensor({{-1, 0, 0, 1, 1, 1}, {0, 2, 2, -1, 0, -1}});
  const auto out = step_means(values, ids, 3);
  const auto emb = step_means(hidden, ids, 3);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < 3; ++s) {
      double sum = 0, count = 0;
      std::vector<double> e(3, 0.0);
      for (int64_t t = 0; t < 6; ++t)
        if (ids[b][t].item<int64_t>() == s) {
          sum += values[b][t].item<double>();
          for (int64_t d = 0; d < 3; ++d) e[d] += hidden[b][t][d].item<double>();
          count += 1;
        }
      EXPECT_EQ(out.mask[b][s].item<bool>(), count > 0);
      EXPECT_NEAR(out.means[b][s].item<double>(), count > 0 ? sum / count : 0.0, 1e-12);
      for (int64_t d = 0; d < 3; ++d) EXPECT_NEAR(emb.means[b][s][d].item<double>(), count > 0 ? e[d] / count : 0.0, 1e-12);
    }
  testing::expect_gradcheck([&](const std::vector<torch::Tensor>& x) { return step_means(x[0], ids, 3).means; }, {values});
}

TEST(JointScoring, BadInputGivesClearErrors) {
  using testing::expect_error;
  const torch::Tensor ids = torch::tensor({{1, 2, 3}});
  expect_error([&] { joint_labels(torch::tensor({1, 2})); }, "input_ids must have shape [B, T], got [2]");
  expect_error([&] { joint_labels(torch::tensor({{1}})); }, "input_ids must hold at least two positions per row");
  expect_error([&] { joint_labels(ids, torch::ones({1, 2})); }, "attention_mask must have shape [1, 3] matching input_ids, got [1, 2]");
  expect_error([&] { joint_labels(ids.to(torch::kInt)); }, "input_ids must be int64, got Int");
  expect_error([&] { completion_labels(ids, {}, torch::tensor({1, 2})); },
               "prompt_lengths must have shape [B] matching input_ids [1, 3], got [2]");
  expect_error([&] { completion_labels(ids, {}, torch::tensor({1.5})); }, "prompt_lengths must be integer, got Float");
  expect_error([&] { joint_sequence_logps(torch::randn({1, 4, 5}), ids); },
               "input_ids must have shape [B, T] matching logits [1, 4, 5], got [1, 3]");
  expect_error([&] { step_means(torch::randn({1, 3}), torch::tensor({{0, 1, 3}}), 3); }, "step_ids must be < num_steps (3), got 3");
  expect_error([&] { step_means(torch::randn({1, 3}), torch::tensor({{0, 1}}), 3); },
               "step_ids must have shape [B, T] matching values [1, 3], got [1, 2]");
  expect_error([&] { step_means(torch::randn({1, 3}), torch::tensor({{0, 1, 1}}), 0); }, "num_steps must be >= 1, got 0");
  const torch::Tensor x = torch::randn({3});
  expect_error([&] { F::joint_dpo_loss(x, torch::randn({2}), x, x); },
               "policy_rejected_logps must have shape [B] matching policy_chosen_logps [3], got [2]");
  expect_error([&] { F::joint_dpo_loss(x, x, x, x, JointDPOLossOptions().beta(-1)); }, "beta must be in (0, ");
}

}  // namespace
}  // namespace prefopt
