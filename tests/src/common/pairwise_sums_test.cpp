// Tests of the internal pairwise-sum interface the listwise losses are written against
// (src/common/pairwise_sums.h): the pair selection (label order with a margin, a level window, all pairs),
// the lambda weights, the logistic pair sums, the per-anchor log-sum-exps with and without the anchor's own
// term, the dense levels and stable positions, and their gradients, against plain double loops. A fused
// kernel that replaces the ATen bodies must pass these unchanged.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "../src/common/pairwise_sums.h"
#include "support/gradcheck.h"
#include "support/lists.h"

namespace prefopt::detail {
namespace {

struct Case {
  PairSet set;
  double margin;
  int64_t window;
  bool lambda;
};

struct Data {
  testing::Lists l;
  torch::Tensor scores, grades, mask, gains, inv;
};

Data make_data(uint32_t seed) {
  Data d;
  d.l = testing::random_lists(12, 6, seed, /*levels=*/4);
  d.scores = d.l.policy() - d.l.ref();
  d.grades = d.l.labels();
  d.mask = d.l.mask();
  torch::manual_seed(seed);
  d.gains = torch::rand({12, 6}, torch::kDouble) * 3;
  d.inv = torch::rand({12, 6}, torch::kDouble);
  return d;
}

PairSpec spec_of(const Data& d, const Case& c) {
  PairSpec spec;
  spec.mask = d.mask;
  spec.grades = d.grades;
  spec.set = c.set;
  spec.min_margin = c.margin;
  spec.max_level_distance = c.window;
  if (c.lambda) {
    spec.weight = PairWeight::Lambda;
    spec.gains = d.gains;
    spec.inv_discounts = d.inv;
  }
  return spec;
}

// Plain w_ij.
double weight_ref(const Data& d, const Case& c, int64_t b, int64_t i, int64_t j) {
  const auto& l = d.l;
  if (i == j || !l.M(b, i) || !l.M(b, j)) return 0;
  if (c.set == PairSet::Preferred) {
    if (!(l.Y(b, i) > l.Y(b, j) + c.margin)) return 0;
    if (c.window > 0) {
      std::vector<double> distinct;
      for (int64_t k : l.valid(b)) distinct.push_back(l.Y(b, k));
      std::sort(distinct.begin(), distinct.end(), std::greater<>());
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      auto level = [&](int64_t k) { return std::find(distinct.begin(), distinct.end(), l.Y(b, k)) - distinct.begin(); };
      if (level(j) - level(i) > c.window) return 0;
    }
  }
  if (!c.lambda) return 1;
  return std::abs(d.gains[b][i].item<double>() - d.gains[b][j].item<double>()) *
         std::abs(d.inv[b][i].item<double>() - d.inv[b][j].item<double>());
}

const std::vector<Case> kCases = {
    {PairSet::Preferred, 0.0, 0, false}, {PairSet::Preferred, 1.0, 0, false}, {PairSet::Preferred, 0.0, 1, false},
    {PairSet::Preferred, 0.5, 2, true},  {PairSet::AllDistinct, 0.0, 0, false}, {PairSet::AllDistinct, 0.0, 0, true},
};

TEST(PairwiseSums, LogisticSumsWeightsAndCounts) {
  const Data d = make_data(1);
  for (const Case& c : kCases) {
    const PairSums sums = pairwise_logistic_sums(d.scores, spec_of(d, c));
    for (int64_t b = 0; b < d.l.B; ++b) {
      double value = 0, weight = 0, count = 0;
      for (int64_t i = 0; i < d.l.K; ++i)
        for (int64_t j = 0; j < d.l.K; ++j) {
          const double w = weight_ref(d, c, b, i, j);
          if (w == 0) continue;
          const double x = d.scores[b][i].item<double>() - d.scores[b][j].item<double>();
          value += w * -testing::log_sigmoid_ref(x);
          weight += w;
          count += 1;
        }
      EXPECT_NEAR(sums.value[b].item<double>(), value, 1e-12);
      EXPECT_NEAR(sums.weight[b].item<double>(), weight, 1e-12);
      EXPECT_EQ(sums.count[b].item<double>(), count);
    }
  }
}

TEST(PairwiseSums, AnchorLogSumExpWithAndWithoutSelf) {
  const Data d = make_data(2);
  for (const Case& c : kCases) {
    for (bool self : {true, false}) {
      const AnchorLogSumExp out = anchor_logsumexp(d.scores, spec_of(d, c), self);
      for (int64_t b = 0; b < d.l.B; ++b)
        for (int64_t i = 0; i < d.l.K; ++i) {
          std::vector<double> terms;
          if (self) terms.push_back(0.0);
          bool any = false;
          for (int64_t j = 0; j < d.l.K; ++j) {
            const double w = weight_ref(d, c, b, i, j);
            if (w == 0) continue;
            any = true;
            terms.push_back(std::log(w) + d.scores[b][j].item<double>() - d.scores[b][i].item<double>());
          }
          EXPECT_EQ(out.has_pairs[b][i].item<bool>(), any);
          const double want = any ? testing::logsumexp_ref(terms) : 0.0;
          EXPECT_NEAR(out.value[b][i].item<double>(), want, 1e-12);
        }
    }
  }
}

TEST(PairwiseSums, GradientsFlowToScoresOnlyAndAreFinite) {
  const Data d = make_data(3);
  for (const Case& c : kCases) {
    const PairSpec spec = spec_of(d, c);
    testing::expect_gradcheck([&](const auto& in) { return pairwise_logistic_sums(in[0], spec).value; },
                              {d.scores.clone().requires_grad_()});
    testing::expect_gradcheck([&](const auto& in) { return anchor_logsumexp(in[0], spec, false).value; },
                              {d.scores.clone().requires_grad_()});
  }
  // Invalid entries may hold anything; they get exactly zero gradient.
  torch::Tensor scores = d.scores.clone();
  scores.masked_fill_(d.mask.logical_not(), std::numeric_limits<double>::quiet_NaN());
  scores.requires_grad_();
  const PairSpec spec = spec_of(d, kCases[0]);
  (pairwise_logistic_sums(scores, spec).value.sum() + anchor_logsumexp(scores, spec, true).value.sum()).backward();
  EXPECT_TRUE(scores.grad().isfinite().all().item<bool>());
  EXPECT_EQ(scores.grad().masked_select(d.mask.logical_not()).abs().sum().item<double>(), 0.0);
}

TEST(PairwiseSums, DenseLevelsAndStablePositions) {
  const torch::Tensor grades = torch::tensor({{2.0, 5.0, 2.0, 1.0, 9.0}}, torch::kDouble);
  const torch::Tensor mask = torch::tensor({{true, true, true, true, false}});
  EXPECT_TRUE(torch::equal(dense_levels(grades, mask), torch::tensor({{1, 0, 1, 2, 0}})));
  // Sorted descending, ties by index; the invalid entry goes last.
  EXPECT_TRUE(torch::equal(descending_positions(grades, mask), torch::tensor({{1, 0, 2, 3, 4}})));
}

}  // namespace
}  // namespace prefopt::detail
