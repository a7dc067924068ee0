// Tests of SPO's degree pieces: hidden-state pooling, the degree cross-entropy against a plain float64
// log-softmax loop (with label smoothing), the degree head, the combination L_align + lambda L_degree with a
// pairwise loss (values and gradients reaching the head), and bad input.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/losses/degree.h>
#include <prefopt/losses/pairwise.h>
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

namespace F = functional;

double cross_entropy_ref(const torch::Tensor& logits, int64_t row, int64_t target, double eps) {
  const int64_t k = logits.size(1);
  double m = -1e300, s = 0;
  for (int64_t j = 0; j < k; ++j) m = std::max(m, logits[row][j].item<double>());
  for (int64_t j = 0; j < k; ++j) s += std::exp(logits[row][j].item<double>() - m);
  const double lse = m + std::log(s);
  double mean_neg_logp = 0;
  for (int64_t j = 0; j < k; ++j) mean_neg_logp += (lse - logits[row][j].item<double>()) / static_cast<double>(k);
  return (1 - eps) * (lse - logits[row][target].item<double>()) + eps * mean_neg_logp;
}

TEST(DegreeLoss, MatchesCrossEntropyReference) {
  torch::manual_seed(1);
  const torch::Tensor logits = torch::randn({12, 4}, torch::kDouble) * 3;
  const torch::Tensor degrees = torch::randint(0, 4, {12});
  for (double eps : {0.0, 0.1}) {
    const auto out = F::degree_loss(logits, degrees, DegreeLossOptions().label_smoothing(eps).reduction(torch::kNone));
    double accuracy = 0, mean = 0;
    for (int64_t i = 0; i < 12; ++i) {
      const double ref = cross_entropy_ref(logits, i, degrees[i].item<int64_t>(), eps);
      EXPECT_NEAR(out.losses[i].item<double>(), ref, 1e-12);
      mean += ref / 12;
      accuracy += logits[i].argmax().item<int64_t>() == degrees[i].item<int64_t>() ? 1.0 / 12 : 0.0;
    }
    EXPECT_NEAR(out.metrics.at("degree/loss").item<double>(), mean, 1e-5);
    EXPECT_NEAR(out.metrics.at("degree/accuracy").item<double>(), accuracy, 1e-6);
  }
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& x) {
        return F::degree_loss(x[0], degrees, DegreeLossOptions().label_smoothing(0.2).reduction(torch::kNone)).losses;
      },
      {logits.clone().requires_grad_()});
  const auto low = F::degree_loss(logits.to(torch::kBFloat16), degrees);
  EXPECT_EQ(low.loss.scalar_type(), torch::kBFloat16);
  EXPECT_NEAR(low.loss.item<double>(), F::degree_loss(logits.to(torch::kBFloat16).to(torch::kDouble), degrees).loss.item<double>(), 2e-2);
}

TEST(DegreeLoss, ExtremeLogitsStayFinite) {
  const torch::Tensor logits = torch::tensor({{1e4, -1e4, 0.0}, {-1e4, 1e4, 0.0}}).requires_grad_();
  const auto out = F::degree_loss(logits, torch::tensor({1, 1}), DegreeLossOptions().reduction(torch::kSum));
  EXPECT_TRUE(out.losses.isfinite().all().item<bool>());
  EXPECT_NEAR(out.losses[0].item<double>(), 2e4, 1.0);
  EXPECT_NEAR(out.losses[1].item<double>(), 0.0, 1e-6);
  out.loss.backward();
  EXPECT_TRUE(logits.grad().isfinite().all().item<bool>());
}

TEST(DegreeHead, PoolsThenProjects) {
  torch::manual_seed(2);
  const torch::Tensor hidden = torch::randn({3, 5, 4}, torch::kDouble);
  const torch::Tensor mask = torch::tensor({{1, 1, 1, 0, 0}, {0, 1, 1, 1, 1}, {0, 0, 0, 0, 0}});
  const torch::Tensor mean = F::pool_hidden_states(hidden, mask, kMeanPooling);
  const torch::Tensor last = F::pool_hidden_states(hidden, mask, kLastPooling);
  for (int64_t d = 0; d < 4; ++d) {
    double m0 = 0;
    for (int64_t t = 0; t < 3; ++t) m0 += hidden[0][t][d].item<double>() / 3;
    EXPECT_NEAR(mean[0][d].item<double>(), m0, 1e-12);
    EXPECT_NEAR(last[0][d].item<double>(), hidden[0][2][d].item<double>(), 1e-12);
    EXPECT_NEAR(last[1][d].item<double>(), hidden[1][4][d].item<double>(), 1e-12);
    EXPECT_EQ(mean[2][d].item<double>(), 0.0);  // nothing attended
    EXPECT_EQ(last[2][d].item<double>(), 0.0);
  }
  DegreeHead head(DegreeHeadOptions(4, 3).pooling(kLastPooling));
  head->to(torch::kDouble);
  const torch::Tensor logits = head(hidden, mask);
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({3, 3}));
  const torch::Tensor expected = torch::addmm(head->linear->bias, last, head->linear->weight.t());
  EXPECT_LT((logits - expected).abs().max().item<double>(), 1e-12);
  std::ostringstream printed;
  printed << *head;
  EXPECT_NE(printed.str().find("pooling=last"), std::string::npos);
  EXPECT_EQ(degree_pooling_from_string("mean"), kMeanPooling);
}

TEST(SPOLoss, AddsTheWeightedDegreeLossToAnyPairwiseLoss) {
  torch::manual_seed(3);
  const torch::Tensor pc = (torch::randn({4}, torch::kDouble) - 30).requires_grad_();
  const torch::Tensor pr = torch::randn({4}, torch::kDouble) - 31, rc = torch::randn({4}, torch::kDouble) - 30,
                      rr = torch::randn({4}, torch::kDouble) - 30;
  DegreeHead head(DegreeHeadOptions(6, 4));
  head->to(torch::kDouble);
  const torch::Tensor hidden = torch::randn({8, 5, 6}, torch::kDouble);
  const torch::Tensor degrees = torch::tensor({0, 1, 2, 3, 0, 1, 2, 3});
  const auto align = F::dpo_loss(pc, pr, rc, rr);
  const torch::Tensor logits = head(hidden, torch::Tensor());
  const auto out = F::spo_loss(align, logits, degrees, SPOLossOptions().degree_weight(0.25));
  double ce = 0;
  for (int64_t i = 0; i < 8; ++i) ce += cross_entropy_ref(logits.detach(), i, degrees[i].item<int64_t>(), 0.0) / 8;
  EXPECT_NEAR(out.loss.item<double>(), align.loss.item<double>() + 0.25 * ce, 1e-12);
  EXPECT_TRUE(torch::equal(out.losses, align.losses));
  EXPECT_EQ(out.metrics.count("rewards/accuracies"), 1u);
  EXPECT_EQ(out.metrics.count("degree/accuracy"), 1u);
  out.loss.backward();
  EXPECT_TRUE(head->linear->weight.grad().defined());
  EXPECT_GT(head->linear->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(pc.grad().defined());
  // lambda = 0 leaves the alignment loss alone.
  const auto zero = F::spo_loss(F::dpo_loss(pc, pr, rc, rr), head(hidden, torch::Tensor()), degrees, SPOLossOptions().degree_weight(0));
  EXPECT_NEAR(zero.loss.item<double>(), align.loss.item<double>(), 1e-12);
  SPOLoss module(SPOLossOptions().degree_weight(0.25));
  EXPECT_NEAR(module(align, logits, degrees).loss.item<double>(), out.loss.item<double>(), 1e-12);
}

TEST(SPOLoss, BadInputGivesClearErrors) {
  using testing::expect_error;
  const torch::Tensor logits = torch::randn({3, 4});
  expect_error([&] { F::degree_loss(logits, torch::tensor({0, 4, 1})); }, "degrees must be in [0, 4), got 4 at index 1");
  expect_error([&] { F::degree_loss(logits, torch::tensor({0, 1})); }, "degrees must have shape [N] matching logits [3, 4], got [2]");
  expect_error([&] { F::degree_loss(logits, torch::tensor({0.0, 1.0, 2.0})); }, "degrees must be integer, got Float");
  expect_error([&] { F::degree_loss(torch::randn({3, 1}), torch::tensor({0, 0, 0})); },
               "logits must hold at least one example and two degrees, got shape [3, 1]");
  expect_error([&] { F::degree_loss(logits, torch::tensor({0, 1, 2}), DegreeLossOptions().label_smoothing(1.0)); },
               "label_smoothing must be in [0, ");
  expect_error([] { DegreeHead bad(DegreeHeadOptions(4, 1)); }, "num_degrees must be >= 2, got 1");
  DegreeHead head(DegreeHeadOptions(4, 3));
  expect_error([&] { head(torch::randn({2, 3, 5}), torch::Tensor()); }, "hidden_states must have E = hidden_size (4) in its last dimension, got 5");
  expect_error([&] { head(torch::randn({2, 3, 4}), torch::ones({2, 2})); },
               "attention_mask must have shape [2, 3] matching hidden_states, got [2, 2]");
  LossOutput unreduced;
  unreduced.loss = torch::zeros({3});
  expect_error([&] { F::spo_loss(unreduced, logits, torch::tensor({0, 1, 2})); },
               "align.loss must be the reduced (0-dim) alignment loss");
  LossOutput align;
  align.loss = torch::zeros({});
  expect_error([&] { F::spo_loss(align, logits, torch::tensor({0, 1, 2}), SPOLossOptions().degree_weight(-1)); },
               "degree_weight must be in [0, ");
  expect_error([] { degree_pooling_from_string("max"); }, "pooling must be one of: mean, last; got 'max'");
}

}  // namespace
}  // namespace prefopt
