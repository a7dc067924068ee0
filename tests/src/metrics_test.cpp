// Tests of the ranking metrics (ranking_accuracy, kendall_tau, ndcg) against plain double loops written from
// their definitions (LOSSES.md section 8), on padded lists with ties, and of the idealised ranking accuracy
// of Chen et al. 2024, including P = 0, 0.5 and 1; plus the NaN convention and every bad-input message.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/types.h>

#include <prefopt/metrics.h>
#include "support/expect_error.h"
#include "support/lists.h"

namespace prefopt {
namespace {

using testing::Lists;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Scores s = p - q of each entry.
std::vector<double> scores_of(const Lists& l) {
  std::vector<double> s(l.p.size());
  for (size_t i = 0; i < s.size(); ++i) s[i] = l.p[i] - l.q[i];
  return s;
}

double accuracy_ref(const Lists& l, const std::vector<double>& s, int64_t b) {
  double pairs = 0, right = 0;
  for (int64_t i : l.valid(b))
    for (int64_t j : l.valid(b))
      if (l.Y(b, i) > l.Y(b, j)) {
        pairs += 1;
        right += s[b * l.K + i] > s[b * l.K + j] ? 1 : 0;
      }
  return pairs > 0 ? right / pairs : kNaN;
}

double sign(double x) { return x > 0 ? 1 : (x < 0 ? -1 : 0); }

double tau_ref(const Lists& l, const std::vector<double>& s, int64_t b) {
  const auto v = l.valid(b);
  double c_minus_d = 0, n0 = 0, n1 = 0, n2 = 0;
  for (size_t a = 0; a < v.size(); ++a)
    for (size_t c = a + 1; c < v.size(); ++c) {
      const double dy = sign(l.Y(b, v[a]) - l.Y(b, v[c]));
      const double ds = sign(s[b * l.K + v[a]] - s[b * l.K + v[c]]);
      n0 += 1;
      n1 += dy == 0;
      n2 += ds == 0;
      c_minus_d += dy * ds;
    }
  const double denominator = std::sqrt((n0 - n1) * (n0 - n2));
  return denominator > 0 ? c_minus_d / denominator : kNaN;
}

double ndcg_ref(const Lists& l, const std::vector<double>& s, int64_t b, int64_t k) {
  const auto v = l.valid(b);
  std::vector<double> key_s(l.K), key_y(l.K);
  for (int64_t i = 0; i < l.K; ++i) {
    key_s[i] = s[b * l.K + i];
    key_y[i] = l.Y(b, i);
  }
  auto dcg = [&](const std::vector<int64_t>& order) {
    double total = 0;
    for (size_t pos = 0; pos < order.size(); ++pos) {
      if (k > 0 && static_cast<int64_t>(pos) >= k) break;
      total += (std::pow(2.0, l.Y(b, order[pos])) - 1) / std::log2(pos + 2.0);
    }
    return total;
  };
  const double ideal = dcg(testing::sorted_desc(v, key_y));
  return ideal > 0 ? dcg(testing::sorted_desc(v, key_s)) / ideal : kNaN;
}

void expect_same(const std::vector<double>& want, const torch::Tensor& got, double tol, const char* what) {
  ASSERT_EQ(static_cast<int64_t>(want.size()), got.numel()) << what;
  const torch::Tensor g = got.to(torch::kDouble).contiguous();
  for (size_t i = 0; i < want.size(); ++i) {
    const double x = g[i].item<double>();
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(x)) << what << " list " << i << " got " << x;
    } else {
      EXPECT_NEAR(x, want[i], tol) << what << " list " << i;
    }
  }
}

Lists tied_scores_lists() {
  // Integer-valued scores so that ties in scores happen.
  Lists l = testing::random_lists(24, 6, 7, /*levels=*/3);
  for (size_t i = 0; i < l.p.size(); ++i) {
    l.q[i] = 0;
    l.p[i] = std::round(l.p[i] / 20.0);
  }
  return l;
}

TEST(Metrics, RankingAccuracyMatchesReference) {
  for (const Lists& l : {testing::random_lists(32, 5, 1), tied_scores_lists()}) {
    const auto s = scores_of(l);
    const torch::Tensor scores = l.policy() - l.ref();
    const torch::Tensor got = ranking_accuracy(scores, l.labels(), l.mask());
    std::vector<double> want;
    for (int64_t b = 0; b < l.B; ++b) want.push_back(accuracy_ref(l, s, b));
    EXPECT_EQ(got.scalar_type(), torch::kDouble);
    EXPECT_FALSE(got.requires_grad());
    expect_same(want, got, 1e-12, "ranking_accuracy");
  }
}

TEST(Metrics, KendallTauMatchesReference) {
  for (const Lists& l : {testing::random_lists(32, 6, 2), tied_scores_lists()}) {
    const auto s = scores_of(l);
    const torch::Tensor got = kendall_tau(l.policy() - l.ref(), l.labels(), l.mask());
    std::vector<double> want;
    for (int64_t b = 0; b < l.B; ++b) want.push_back(tau_ref(l, s, b));
    expect_same(want, got, 1e-12, "kendall_tau");
  }
}

TEST(Metrics, NdcgMatchesReferenceForEveryCutoff) {
  for (const Lists& l : {testing::random_lists(32, 6, 3), tied_scores_lists()}) {
    const auto s = scores_of(l);
    for (int64_t k : {0, 1, 2, 3, 6, 10}) {
      const torch::Tensor got = ndcg(l.policy() - l.ref(), l.labels(), l.mask(), k);
      std::vector<double> want;
      for (int64_t b = 0; b < l.B; ++b) want.push_back(ndcg_ref(l, s, b, k));
      expect_same(want, got, 1e-12, "ndcg");
    }
  }
}

TEST(Metrics, PerfectAndReversedRankings) {
  const torch::Tensor labels = torch::tensor({{3.0, 2.0, 1.0, 0.0}});
  const torch::Tensor perfect = torch::tensor({{4.0, 3.0, 2.0, 1.0}});
  const torch::Tensor reversed = -perfect;
  EXPECT_EQ(ranking_accuracy(perfect, labels).item<float>(), 1.0f);
  EXPECT_EQ(ranking_accuracy(reversed, labels).item<float>(), 0.0f);
  EXPECT_NEAR(kendall_tau(perfect, labels).item<float>(), 1.0f, 1e-6);
  EXPECT_NEAR(kendall_tau(reversed, labels).item<float>(), -1.0f, 1e-6);
  EXPECT_NEAR(ndcg(perfect, labels).item<float>(), 1.0f, 1e-6);
  EXPECT_LT(ndcg(reversed, labels).item<float>(), 1.0f);
  EXPECT_EQ(ranking_accuracy(perfect, labels).scalar_type(), torch::kFloat);
}

TEST(Metrics, UndefinedListsAreNaN) {
  // List 0: one valid entry; list 1: all labels tied; list 2: fully masked; list 3: a defined list.
  const torch::Tensor scores = torch::tensor({{1.0, 2.0, 3.0}, {1.0, 2.0, 3.0}, {1.0, 2.0, 3.0}, {1.0, 2.0, 3.0}});
  const torch::Tensor labels = torch::tensor({{1.0, 0.0, 2.0}, {1.0, 1.0, 1.0}, {2.0, 1.0, 0.0}, {0.0, 1.0, 2.0}});
  const torch::Tensor mask = torch::tensor({{1, 0, 0}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}});
  const torch::Tensor acc = ranking_accuracy(scores, labels, mask);
  EXPECT_TRUE(std::isnan(acc[0].item<float>()));
  EXPECT_TRUE(std::isnan(acc[1].item<float>()));
  EXPECT_TRUE(std::isnan(acc[2].item<float>()));
  EXPECT_EQ(acc[3].item<float>(), 1.0f);
  EXPECT_EQ(acc.nanmean().item<float>(), 1.0f);
  const torch::Tensor tau = kendall_tau(scores, labels, mask);
  EXPECT_TRUE(std::isnan(tau[1].item<float>()));
  EXPECT_TRUE(std::isnan(tau[2].item<float>()));
  // NDCG of an all-zero-relevance list is undefined; of a one-entry list with positive gain, 1.
  const torch::Tensor n = ndcg(scores, torch::zeros({4, 3}), mask);
  EXPECT_TRUE(std::isnan(n[3].item<float>()));
  EXPECT_EQ(ndcg(scores, labels, mask)[0].item<float>(), 1.0f);
}

TEST(Metrics, MaskedEntriesAreIgnoredWhateverTheyHold) {
  torch::Tensor scores = torch::tensor({{1.0, 2.0, 0.0}});
  scores[0][2] = std::numeric_limits<float>::quiet_NaN();
  const torch::Tensor labels = torch::tensor({{0.0, 1.0, 9.0}});
  const torch::Tensor mask = torch::tensor({{true, true, false}});
  EXPECT_EQ(ranking_accuracy(scores, labels, mask).item<float>(), 1.0f);
  EXPECT_NEAR(kendall_tau(scores, labels, mask).item<float>(), 1.0f, 1e-6);
  EXPECT_NEAR(ndcg(scores, labels, mask).item<float>(), 1.0f, 1e-6);
}

TEST(Metrics, IdealizedRankingAccuracy) {
  // (q_c - q_r) + (1/beta) log(P / (1 - P)) > 0, by hand.
  const torch::Tensor qc = torch::tensor({-10.0, -10.0, -10.0, -10.0, -12.0, -9.0}, torch::kDouble);
  const torch::Tensor qr = torch::tensor({-11.0, -9.0, -9.0, -9.0, -10.0, -9.0}, torch::kDouble);
  const torch::Tensor probs = torch::tensor({0.5, 0.6, 0.9, 1.0, 0.0, 0.5}, torch::kDouble);
  const double beta = 0.1;
  const torch::Tensor got = idealized_ranking_accuracy(qc, qr, probs, beta);
  const auto a = qc.accessor<double, 1>(), c = qr.accessor<double, 1>(), p = probs.accessor<double, 1>();
  for (int64_t i = 0; i < 6; ++i) {
    double want;
    if (p[i] == 1.0) {
      want = 1;
    } else if (p[i] == 0.0) {
      want = 0;
    } else {
      want = (a[i] - c[i]) + std::log(p[i] / (1 - p[i])) / beta > 0 ? 1 : 0;
    }
    EXPECT_EQ(got[i].item<double>(), want) << i;
  }
  EXPECT_EQ(got.scalar_type(), torch::kDouble);
  // 0.6 with beta 0.1: 10 * log(1.5) = 4.05 > 1; with beta 10 it no longer overturns the reference.
  EXPECT_EQ(idealized_ranking_accuracy(qc, qr, probs, 10.0)[1].item<double>(), 0.0);
}

TEST(Metrics, BadInputGivesClearErrors) {
  using testing::expect_error;
  const torch::Tensor s = torch::randn({2, 3});
  expect_error([&] { ranking_accuracy(torch::randn({3}), s); }, "scores must have shape [B, K], got [3]");
  expect_error([&] { ranking_accuracy(s, torch::randn({2, 4})); }, "labels must have shape [2, 3] matching scores, got [2, 4]");
  expect_error([&] { kendall_tau(s, s, torch::ones({3, 2})); }, "mask must have shape [2, 3] matching scores, got [3, 2]");
  expect_error([&] { ndcg(s, s.gt(0)); }, "labels must hold integer or floating grades or ranks, got Bool");
  expect_error([&] { ndcg(s, s, {}, -1); }, "k must be >= 0 (0 = the whole list), got -1");
  expect_error([&] { ndcg(s.to(torch::kLong), s); }, "scores must be floating");
  const torch::Tensor x = torch::randn({4});
  expect_error([&] { idealized_ranking_accuracy(x, x, torch::full({4}, 1.5), 0.1); },
               "preference_probs must be in [0, 1], got 1.5 at index 0");
  expect_error([&] { idealized_ranking_accuracy(x, x, torch::full({3}, 0.5), 0.1); },
               "preference_probs must have shape [B] matching ref_chosen_logps [4], got [3]");
  expect_error([&] { idealized_ranking_accuracy(x, x, torch::full({4}, 0.5), 0.0); }, "beta must be in (0, ");
  expect_error([&] { idealized_ranking_accuracy(x, torch::randn({5}), torch::full({4}, 0.5), 0.1); },
               "ref_rejected_logps must have shape [B] matching ref_chosen_logps [4], got [5]");
}

}  // namespace
}  // namespace prefopt
