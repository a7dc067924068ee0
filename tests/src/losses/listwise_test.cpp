// Tests of the listwise losses (Plackett-Luce, all pairs, LiPO-lambda, IRPO, PRO, TPO, RankList) against
// plain double references written from LOSSES.md section 5 (loops over each list's valid entries, never the
// code under test), their gradients (finite differences), bf16 inputs, the edge cases (K = 1, all-tied
// labels, padded lists of mixed length, a fully masked list, +-1e4 scores, garbage in padding), the
// properties that pin the math, the documented deviations from the research code, and bad input.
#include <cmath>
#include <functional>
#include <limits>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/losses/listwise.h>
#include <prefopt/losses/pairwise.h>
#include "support/expect_error.h"
#include "support/gradcheck.h"
#include "support/lists.h"

namespace prefopt {
namespace {

namespace F = functional;
using testing::Lists;
using testing::log_sigmoid_ref;
using testing::logsumexp_ref;

// ---------------------------------------------------------------------------------------------------------
// References, one list at a time, from the formulas.
// ---------------------------------------------------------------------------------------------------------

std::vector<double> list_scores(const Lists& l, int64_t b, double beta, bool reference_free = false) {
  std::vector<double> s(l.K, 0.0);
  for (int64_t k = 0; k < l.K; ++k) s[k] = beta * (l.P(b, k) - (reference_free ? 0.0 : l.Q(b, k)));
  return s;
}

std::vector<double> list_labels(const Lists& l, int64_t b) {
  std::vector<double> y(l.K);
  for (int64_t k = 0; k < l.K; ++k) y[k] = l.Y(b, k);
  return y;
}

// Plackett-Luce, sorted form: order by label descending; -sum_{k < n-1} (s_tau(k) - LSE_{j >= k} s_tau(j)).
// Only for lists with distinct labels; top_m = 0 for all positions.
double plackett_luce_sorted_ref(const Lists& l, int64_t b, double beta, int64_t top_m = 0) {
  const auto s = list_scores(l, b, beta);
  const auto order = testing::sorted_desc(l.valid(b), list_labels(l, b));
  double loss = 0;
  const int64_t n = static_cast<int64_t>(order.size());
  for (int64_t k = 0; k + 1 < n; ++k) {
    if (top_m > 0 && k >= top_m) break;
    std::vector<double> rest;
    for (int64_t j = k; j < n; ++j) rest.push_back(s[order[j]]);
    loss -= s[order[k]] - logsumexp_ref(rest);
  }
  return loss;
}

// Plackett-Luce with ties: a tied response is never in another's denominator.
double plackett_luce_ties_ref(const Lists& l, int64_t b, double beta) {
  const auto s = list_scores(l, b, beta);
  double loss = 0;
  for (int64_t i : l.valid(b)) {
    std::vector<double> terms{s[i]};
    for (int64_t j : l.valid(b))
      if (l.Y(b, j) < l.Y(b, i)) terms.push_back(s[j]);
    loss += logsumexp_ref(terms) - s[i];
  }
  return loss;
}

double all_pairs_ref(const Lists& l, int64_t b, double beta) {
  const auto s = list_scores(l, b, beta);
  double total = 0, pairs = 0;
  for (int64_t i : l.valid(b))
    for (int64_t j : l.valid(b))
      if (l.Y(b, i) > l.Y(b, j)) {
        total += -log_sigmoid_ref(s[i] - s[j]);
        pairs += 1;
      }
  return pairs > 0 ? total / pairs : 0.0;
}

// LiPO-lambda with tau the 1-based rank by current scores (ties by index), D = ln(1 + tau).
double lipo_ref(const std::vector<double>& s, const std::vector<double>& y, const std::vector<int64_t>& valid,
                bool lambda_weighting) {
  const auto by_score = testing::sorted_desc(valid, s);
  std::vector<double> tau(s.size(), 0.0);
  for (size_t r = 0; r < by_score.size(); ++r) tau[by_score[r]] = static_cast<double>(r + 1);
  double loss = 0;
  for (int64_t i : valid)
    for (int64_t j : valid)
      if (y[i] > y[j]) {
        const double gi = std::pow(2.0, y[i]) - 1, gj = std::pow(2.0, y[j]) - 1;
        const double delta = lambda_weighting
                                 ? std::abs(gi - gj) * std::abs(1 / std::log(1 + tau[i]) - 1 / std::log(1 + tau[j]))
                                 : 1.0;
        loss += delta * std::log1p(std::exp(-(s[i] - s[j])));
      }
  return loss;
}

double lipo_list_ref(const Lists& l, int64_t b, double beta, bool lambda_weighting = true) {
  return lipo_ref(list_scores(l, b, beta), list_labels(l, b), l.valid(b), lambda_weighting);
}

// IRPO: -(1/n) sum_k w_k logsig(-A_k), A_k = log((1/(n-1)) sum_{j != k} exp(beta (h_j - h_k))).
double irpo_ref(const Lists& l, int64_t b, double beta, IRPOWeighting weighting, const std::vector<double>* lengths = nullptr) {
  const auto valid = l.valid(b);
  const int64_t n = static_cast<int64_t>(valid.size());
  if (n < 2) return 0.0;
  std::vector<double> h(l.K);
  for (int64_t k = 0; k < l.K; ++k) {
    h[k] = l.P(b, k) - l.Q(b, k);
    if (lengths) h[k] /= std::max(1.0, (*lengths)[b * l.K + k]);
  }
  std::vector<double> pos(l.K);  // 1 + the number of strictly better responses (ties share a position)
  for (int64_t k : valid) {
    pos[k] = 1;
    for (int64_t j : valid) pos[k] += l.Y(b, j) > l.Y(b, k);
  }
  double total = 0;
  for (int64_t k : valid) {
    double sum = 0;
    for (int64_t j : valid)
      if (j != k) sum += std::exp(beta * (h[j] - h[k]));
    const double a = std::log(sum / static_cast<double>(n - 1));
    const double gain = std::pow(2.0, l.Y(b, k)) - 1;
    double w = 1;
    if (weighting == kDCG) w = gain / std::log2(1 + pos[k]);
    if (weighting == kDiscount) w = 1 / std::log2(1 + pos[k]);
    if (weighting == kLinearDiscount) w = gain / pos[k];
    total += w * log_sigmoid_ref(-a);
  }
  return -total / static_cast<double>(n);
}

// PRO, sorted form for lists with distinct rewards: positions k = 0..n-2 in reward order,
// L_k = LSE(s_k D*_k, {s_i D_ki}_{i > k}) - s_k D*_k; plus w (n-1)^2 (-p_best).
double pro_ref(const Lists& l, int64_t b, const std::vector<double>& lengths, double w) {
  const auto order = testing::sorted_desc(l.valid(b), list_labels(l, b));
  const int64_t n = static_cast<int64_t>(order.size());
  std::vector<double> s(l.K);
  for (int64_t k = 0; k < l.K; ++k) s[k] = l.P(b, k) / std::max(1.0, lengths[b * l.K + k]);
  double rank = 0;
  for (int64_t k = 0; k + 1 < n; ++k) {
    double d_star = -1e300;
    for (int64_t i = k + 1; i < n; ++i) d_star = std::max(d_star, l.Y(b, order[k]) - l.Y(b, order[i]));
    std::vector<double> terms{s[order[k]] * d_star};
    for (int64_t i = k + 1; i < n; ++i) terms.push_back(s[order[i]] * (l.Y(b, order[k]) - l.Y(b, order[i])));
    rank += logsumexp_ref(terms) - s[order[k]] * d_star;
  }
  const double sft = n > 0 ? -l.P(b, order[0]) : 0.0;
  return rank + w * (n - 1) * (n - 1) * (n > 1 ? sft : 0.0);
}

// RankList: pairs y_i > y_j + W within a window of dense label levels.
double ranklist_ref(const Lists& l, int64_t b, double beta, bool lse, double margin, int64_t window) {
  const auto s = list_scores(l, b, beta);
  const auto valid = l.valid(b);
  std::vector<double> distinct;
  for (int64_t k : valid) distinct.push_back(l.Y(b, k));
  std::sort(distinct.begin(), distinct.end(), std::greater<>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  auto level = [&](int64_t k) {
    return static_cast<int64_t>(std::find(distinct.begin(), distinct.end(), l.Y(b, k)) - distinct.begin());
  };
  double loss = 0;
  for (int64_t i : valid) {
    std::vector<double> terms{0.0};  // log(1 + sum): the 1 is exp(0)
    for (int64_t j : valid) {
      if (!(l.Y(b, i) > l.Y(b, j) + margin)) continue;
      if (window > 0 && level(j) - level(i) > window) continue;
      if (lse) {
        terms.push_back(s[j] - s[i]);
      } else {
        loss += -log_sigmoid_ref(s[i] - s[j]);
      }
    }
    if (lse) loss += logsumexp_ref(terms);
  }
  return loss;
}

void expect_losses(const std::function<double(int64_t)>& ref, const torch::Tensor& losses, double tol,
                   const char* what) {
  ASSERT_EQ(losses.dim(), 1) << what;
  for (int64_t b = 0; b < losses.size(0); ++b) {
    EXPECT_NEAR(losses[b].item<double>(), ref(b), tol * (1 + std::abs(ref(b)))) << what << " list " << b;
  }
}

// Distinct labels per list (a random permutation of 0..K-1) so that sorted references apply.
Lists distinct_lists(int64_t B, int64_t K, uint32_t seed, int64_t min_len = 1) {
  Lists l = testing::random_lists(B, K, seed, /*levels=*/4, min_len);
  std::mt19937 gen(seed + 100);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> perm(K);
    std::iota(perm.begin(), perm.end(), 0.0);
    std::shuffle(perm.begin(), perm.end(), gen);
    for (int64_t k = 0; k < K; ++k) l.y[b * K + k] = perm[k];
  }
  return l;
}

std::vector<double> random_lengths(const Lists& l, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> len(1, 30);
  std::vector<double> out(l.p.size());
  for (double& x : out) x = len(gen);
  out[0] = 0;  // clamped to 1
  return out;
}

torch::Tensor lengths_tensor(const Lists& l, const std::vector<double>& lengths) {
  return torch::tensor(lengths, torch::kDouble).view({l.B, l.K});
}

// ---------------------------------------------------------------------------------------------------------
// Values against the references
// ---------------------------------------------------------------------------------------------------------

TEST(PlackettLuceLoss, MatchesSortedReferenceWithPaddingAndTopM) {
  const Lists l = distinct_lists(16, 5, 11);
  for (double beta : {0.1, 1.0}) {
    for (int64_t m : {0, 1, 2, 4}) {
      const auto out = F::plackett_luce_loss(l.policy(), l.ref(), l.labels(), l.mask(),
                                             PlackettLuceLossOptions().beta(beta).top_m(m).reduction(torch::kNone));
      expect_losses([&](int64_t b) { return plackett_luce_sorted_ref(l, b, beta, m); }, out.losses, 1e-12, "pl");
    }
  }
}

TEST(PlackettLuceLoss, TiedLabelsNeverCompete) {
  const Lists l = testing::random_lists(20, 6, 12, /*levels=*/3);
  const auto out = F::plackett_luce_loss(l.policy(), l.ref(), l.labels(), l.mask(),
                                         PlackettLuceLossOptions().beta(0.5).reduction(torch::kNone));
  expect_losses([&](int64_t b) { return plackett_luce_ties_ref(l, b, 0.5); }, out.losses, 1e-12, "pl ties");
  // Swapping two tied responses' scores leaves the loss unchanged only because they never face each other:
  // check instead that the loss of an all-tied list is exactly 0.
  const torch::Tensor tied = torch::ones({1, 4});
  EXPECT_EQ(F::plackett_luce_loss(torch::randn({1, 4}), torch::randn({1, 4}), tied).loss.item<float>(), 0.0f);
}

TEST(AllPairsLoss, MatchesReference) {
  const Lists l = testing::random_lists(20, 6, 13);
  const auto out = F::all_pairs_loss(l.policy(), l.ref(), l.labels(), l.mask(),
                                     AllPairsLossOptions().beta(0.3).reduction(torch::kNone));
  expect_losses([&](int64_t b) { return all_pairs_ref(l, b, 0.3); }, out.losses, 1e-12, "all pairs");
}

TEST(LiPOLambdaLoss, MatchesReference) {
  const Lists l = testing::random_lists(20, 6, 14);
  for (bool weighting : {true, false}) {
    const auto out = F::lipo_lambda_loss(
        l.policy(), l.ref(), l.labels(), l.mask(),
        LiPOLambdaLossOptions().beta(0.5).lambda_weighting(weighting).reduction(torch::kNone));
    expect_losses([&](int64_t b) { return lipo_list_ref(l, b, 0.5, weighting); }, out.losses, 1e-12, "lipo");
  }
}

TEST(IRPOLoss, MatchesReferenceForEveryWeighting) {
  const Lists l = testing::random_lists(20, 5, 15);
  for (auto weighting : {kDCG, kDiscount, kLinearDiscount, kUniform}) {
    const auto out = F::irpo_loss(l.policy(), l.ref(), l.labels(), l.mask(), {},
                                  IRPOLossOptions().beta(0.2).weighting(weighting).reduction(torch::kNone));
    expect_losses([&](int64_t b) { return irpo_ref(l, b, 0.2, weighting); }, out.losses, 1e-12,
                  to_string(weighting).c_str());
  }
}

TEST(IRPOLoss, LengthNormalizedLogRatios) {
  const Lists l = testing::random_lists(12, 4, 16);
  const auto lengths = random_lengths(l, 3);
  const auto out = F::irpo_loss(l.policy(), l.ref(), l.labels(), l.mask(), lengths_tensor(l, lengths),
                                IRPOLossOptions().length_normalize(true).reduction(torch::kNone));
  expect_losses([&](int64_t b) { return irpo_ref(l, b, 1.0, kDCG, &lengths); }, out.losses, 1e-12, "irpo lengths");
}

TEST(IRPOLoss, TiedRelevanceSharesTheIdealPosition) {
  // All tied: every response at position 1, so the loss is the formula's value, independent of the order.
  Lists l = testing::random_lists(6, 4, 29);
  std::fill(l.y.begin(), l.y.end(), 2.0);
  std::fill(l.m.begin(), l.m.end(), true);
  const auto out = F::irpo_loss(l.policy(), l.ref(), l.labels(), {}, {}, IRPOLossOptions().reduction(torch::kNone));
  expect_losses([&](int64_t b) { return irpo_ref(l, b, 1.0, kDCG); }, out.losses, 1e-12, "irpo tied");
  const torch::Tensor flipped = F::irpo_loss(l.policy().flip(1), l.ref().flip(1), l.labels(), {}, {},
                                             IRPOLossOptions().reduction(torch::kNone)).losses;
  EXPECT_LT((flipped - out.losses).abs().max().item<double>(), 1e-12);
  // Zero gains: zero loss.
  EXPECT_EQ(F::irpo_loss(l.policy(), l.ref(), torch::zeros({6, 4})).loss.item<double>(), 0.0);
}

TEST(PROLoss, MatchesSortedReference) {
  const Lists l = distinct_lists(16, 5, 17);
  const auto lengths = random_lengths(l, 4);
  for (double w : {0.0, 0.05, 1.0}) {
    const auto out = F::pro_loss(l.policy(), lengths_tensor(l, lengths), l.labels(), l.mask(),
                                 PROLossOptions().sft_weight(w).reduction(torch::kNone));
    expect_losses([&](int64_t b) { return pro_ref(l, b, lengths, w); }, out.losses, 1e-12, "pro");
  }
}

TEST(PROLoss, TiesAreLeftOutOfEachOthersTerms) {
  // rewards (2, 1, 1): the tied pair never enters each other's term, so its order does not matter and the
  // loss is the sum of the top response's term alone.
  const torch::Tensor p = torch::tensor({{-3.0, -5.0, -4.0}}, torch::kDouble);
  const torch::Tensor r = torch::tensor({{2.0, 1.0, 1.0}}, torch::kDouble);
  const auto out = F::pro_loss(p, {}, r, {}, PROLossOptions().length_normalize(false).sft_weight(0.0));
  const double expected = logsumexp_ref({-3.0 * 1, -5.0 * 1, -4.0 * 1}) - (-3.0);
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-12);
  const auto swapped = F::pro_loss(torch::tensor({{-3.0, -4.0, -5.0}}, torch::kDouble), {}, r, {},
                                   PROLossOptions().length_normalize(false).sft_weight(0.0));
  EXPECT_NEAR(swapped.loss.item<double>(), expected, 1e-12);
}

// TPO's step rewards: R_k = sum_s w h / sum_s w, then LiPO-lambda over beta R.
TEST(TPOLoss, MatchesReferenceWithGivenWeights) {
  const int64_t B = 6, K = 4, S = 3;
  torch::manual_seed(3);
  const torch::Tensor pol = torch::randn({B, K, S}, torch::kDouble) - 2;
  const torch::Tensor ref = torch::randn({B, K, S}, torch::kDouble) - 2;
  const torch::Tensor step_mask = torch::rand({B, K, S}).gt(0.25);
  const torch::Tensor weights = torch::rand({B, K, S}, torch::kDouble) * 2;
  const torch::Tensor labels = torch::randint(0, 4, {B, K}).to(torch::kDouble);
  const torch::Tensor mask = torch::rand({B, K}).gt(0.2);
  const double beta = 0.7;
  const auto out = F::tpo_loss(pol, ref, step_mask, weights, labels, mask, TPOLossOptions().beta(beta).reduction(torch::kNone));
  auto acc = [](const torch::Tensor& t) { return t.contiguous(); };
  const auto P = acc(pol), Q = acc(ref), W = acc(weights);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> s(K, 0.0), y(K);
    std::vector<int64_t> valid;
    for (int64_t k = 0; k < K; ++k) {
      y[k] = labels[b][k].item<double>();
      if (!mask[b][k].item<bool>()) continue;
      valid.push_back(k);
      double num = 0, den = 0;
      for (int64_t st = 0; st < S; ++st) {
        if (!step_mask[b][k][st].item<bool>()) continue;
        const double w = W[b][k][st].item<double>();
        num += w * (P[b][k][st].item<double>() - Q[b][k][st].item<double>());
        den += w;
      }
      s[k] = den > 0 ? beta * num / den : 0.0;
    }
    EXPECT_NEAR(out.losses[b].item<double>(), lipo_ref(s, y, valid, true), 1e-12) << b;
    for (int64_t k : valid) EXPECT_NEAR(out.rewards[b][k].item<double>(), s[k], 1e-12);
  }
}

TEST(TPOLoss, StepWeightsAreOnePlusCosineToTheBestResponse) {
  const int64_t B = 3, K = 3, S = 2, E = 5;
  torch::manual_seed(4);
  const torch::Tensor emb = torch::randn({B, K, S, E}, torch::kDouble);
  const torch::Tensor labels = torch::tensor({{0.0, 2.0, 1.0}, {3.0, 1.0, 2.0}, {1.0, 1.0, 0.0}}, torch::kDouble);
  torch::Tensor step_mask = torch::ones({B, K, S}, torch::kBool);
  step_mask[0][1][1] = false;  // the best response of list 0 lacks step 1: weight 1 there for everyone
  const torch::Tensor w = F::tpo_step_weights(emb, step_mask, labels);
  const int64_t best[] = {1, 0, 0};  // list 2: tie between 0 and 1, first by index
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t s = 0; s < S; ++s) {
        double want;
        if (!step_mask[b][k][s].item<bool>()) {
          want = 0;
        } else if (!step_mask[b][best[b]][s].item<bool>()) {
          want = 1;
        } else {
          double dot = 0, na = 0, nb = 0;
          for (int64_t e = 0; e < E; ++e) {
            const double x = emb[b][k][s][e].item<double>(), z = emb[b][best[b]][s][e].item<double>();
            dot += x * z;
            na += x * x;
            nb += z * z;
          }
          want = 1 + dot / std::sqrt(na * nb);
        }
        EXPECT_NEAR(w[b][k][s].item<double>(), want, 1e-12) << b << k << s;
      }
  EXPECT_FALSE(w.requires_grad());
}

TEST(RankListLoss, MatchesReferenceForBothFormsMarginsAndWindows) {
  const Lists l = testing::random_lists(20, 6, 18, /*levels=*/5);
  for (auto form : {kExact, kLogSumExp}) {
    for (double margin : {0.0, 1.0, 2.5}) {
      for (int64_t window : {0, 1, 2}) {
        const auto out = F::ranklist_loss(
            l.policy(), l.ref(), l.labels(), l.mask(),
            RankListLossOptions().beta(0.4).form(form).min_margin(margin).window(window).reduction(torch::kNone));
        expect_losses([&](int64_t b) { return ranklist_ref(l, b, 0.4, form == kLogSumExp, margin, window); },
                      out.losses, 1e-12, "ranklist");
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Properties that pin the math
// ---------------------------------------------------------------------------------------------------------

TEST(ListwiseProperties, PlackettLuceWithTwoResponsesIsDpoSigmoid) {
  torch::manual_seed(5);
  const torch::Tensor pc = torch::randn({8}, torch::kDouble) * 5 - 40, pr = torch::randn({8}, torch::kDouble) * 5 - 40;
  const torch::Tensor rc = torch::randn({8}, torch::kDouble) * 5 - 40, rr = torch::randn({8}, torch::kDouble) * 5 - 40;
  const auto dpo = F::dpo_loss(pc, pr, rc, rr, DPOLossOptions().beta(0.3).reduction(torch::kNone));
  // Chosen in column 1 this time: the label decides, not the position.
  const auto pl = F::plackett_luce_loss(torch::stack({pr, pc}, 1), torch::stack({rr, rc}, 1),
                                        torch::tensor({{0, 1}}).expand({8, 2}), {},
                                        PlackettLuceLossOptions().beta(0.3).reduction(torch::kNone));
  EXPECT_LT((pl.losses - dpo.losses).abs().max().item<double>(), 1e-12);
  // The all-pairs baseline with K = 2 is DPO too.
  const auto ap = F::all_pairs_loss(torch::stack({pc, pr}, 1), torch::stack({rc, rr}, 1),
                                    torch::tensor({{1, 0}}).expand({8, 2}), {},
                                    AllPairsLossOptions().beta(0.3).reduction(torch::kNone));
  EXPECT_LT((ap.losses - dpo.losses).abs().max().item<double>(), 1e-12);
}

TEST(ListwiseProperties, LiPOWithConstantWeightsIsTheAllPairsSum) {
  const Lists l = testing::random_lists(16, 6, 19);
  const auto lipo = F::lipo_lambda_loss(l.policy(), l.ref(), l.labels(), l.mask(),
                                        LiPOLambdaLossOptions().beta(0.2).lambda_weighting(false).reduction(torch::kNone));
  const auto all = F::all_pairs_loss(l.policy(), l.ref(), l.labels(), l.mask(),
                                     AllPairsLossOptions().beta(0.2).reduction(torch::kNone));
  // LiPO sums over the pairs, the baseline averages: they differ by the pair count.
  const torch::Tensor pairs = all.metrics.at("pairs/count");  // batch mean; count per list below
  for (int64_t b = 0; b < l.B; ++b) {
    double count = 0;
    for (int64_t i : l.valid(b))
      for (int64_t j : l.valid(b)) count += l.Y(b, i) > l.Y(b, j);
    EXPECT_NEAR(lipo.losses[b].item<double>(), count * all.losses[b].item<double>(), 1e-12) << b;
  }
  EXPECT_GT(pairs.item<float>(), 0.0f);
}

TEST(ListwiseProperties, IRPOWithTwoResponsesAndEqualWeightsHasAClosedForm) {
  torch::manual_seed(6);
  const torch::Tensor p = torch::randn({10, 2}, torch::kDouble) * 3, q = torch::randn({10, 2}, torch::kDouble) * 3;
  const torch::Tensor labels = torch::tensor({{1.0, 0.0}}, torch::kDouble).expand({10, 2});
  const double beta = 0.8;
  const auto out = F::irpo_loss(p, q, labels, {}, {}, IRPOLossOptions().beta(beta).weighting(kUniform).reduction(torch::kNone));
  const torch::Tensor d = beta * ((p.select(1, 0) - q.select(1, 0)) - (p.select(1, 1) - q.select(1, 1)));
  // A_1 = -d, A_2 = d: loss = -(logsig(d) + logsig(-d)) / 2.
  for (int64_t b = 0; b < 10; ++b) {
    const double x = d[b].item<double>();
    EXPECT_NEAR(out.losses[b].item<double>(), -(log_sigmoid_ref(x) + log_sigmoid_ref(-x)) / 2, 1e-12);
  }
}

TEST(ListwiseProperties, RankListLogSumExpNeverExceedsExact) {
  for (uint32_t seed = 0; seed < 5; ++seed) {
    const Lists l = testing::random_lists(32, 7, 100 + seed, /*levels=*/4);
    for (double margin : {0.0, 1.0}) {
      for (int64_t window : {0, 1, 2}) {
        auto opts = RankListLossOptions().beta(1.0).min_margin(margin).window(window).reduction(torch::kNone);
        const auto exact = F::ranklist_loss(l.policy(), l.ref(), l.labels(), l.mask(), opts.form(kExact));
        const auto lse = F::ranklist_loss(l.policy(), l.ref(), l.labels(), l.mask(), opts.form(kLogSumExp));
        EXPECT_TRUE((lse.losses <= exact.losses + 1e-12).all().item<bool>());
      }
    }
  }
}

TEST(ListwiseProperties, RankListFormsAgreeWithOnePairPerAnchor) {
  // Distinct labels and window 1: every anchor but the last faces exactly its next level.
  const Lists l = distinct_lists(16, 5, 20, /*min_len=*/5);
  auto opts = RankListLossOptions().beta(0.5).window(1).reduction(torch::kNone);
  const auto exact = F::ranklist_loss(l.policy(), l.ref(), l.labels(), l.mask(), opts.form(kExact));
  const auto lse = F::ranklist_loss(l.policy(), l.ref(), l.labels(), l.mask(), opts.form(kLogSumExp));
  EXPECT_LT((exact.losses - lse.losses).abs().max().item<double>(), 1e-12);
  EXPECT_GT(exact.losses.min().item<double>(), 0.0);
}

TEST(ListwiseProperties, RanksAndGradesDescribeTheSameOrder) {
  const Lists l = distinct_lists(8, 5, 21, /*min_len=*/2);
  // ranks: 1 = best; the grade of each entry is its label, so rank = (max label + 1) - label.
  const torch::Tensor grades = l.labels();
  const torch::Tensor ranks = 10 - grades;
  const auto a = F::plackett_luce_loss(l.policy(), l.ref(), grades, l.mask(), PlackettLuceLossOptions().reduction(torch::kNone));
  const auto b = F::plackett_luce_loss(l.policy(), l.ref(), ranks, l.mask(),
                                       PlackettLuceLossOptions().labels(kRanks).reduction(torch::kNone));
  EXPECT_LT((a.losses - b.losses).abs().max().item<double>(), 1e-12);
  EXPECT_EQ(list_labels_from_string("ranks"), kRanks);
  testing::expect_error([] { list_labels_from_string("rank"); }, "labels must be one of: grades, ranks; got 'rank'");
}

// ---------------------------------------------------------------------------------------------------------
// Deviations from the released research code, each pinned
// ---------------------------------------------------------------------------------------------------------

TEST(ListwiseDeviations, TPOMinimisesTheRankingLossInsteadOfMaximisingIt) {
  // The released code returns -logsig(beta * L_rank), whose gradient pushes L_rank up. prefopt's loss is
  // L_rank itself: equal to the LiPO-lambda reference, and its gradient raises the best response's reward.
  const torch::Tensor pol = torch::tensor({{{-1.0, -1.0}, {-1.0, -1.0}, {-1.0, -1.0}}}, torch::kDouble).requires_grad_();
  const torch::Tensor ref = torch::full({1, 3, 2}, -1.2, torch::kDouble);
  const torch::Tensor labels = torch::tensor({{2.0, 1.0, 0.0}}, torch::kDouble);
  const auto out = F::tpo_loss(pol, ref, {}, {}, labels, {}, TPOLossOptions().beta(1.0));
  const std::vector<double> s{0.2, 0.2, 0.2};
  EXPECT_NEAR(out.loss.item<double>(), lipo_ref(s, {2, 1, 0}, {0, 1, 2}, true), 1e-12);
  const double released = -log_sigmoid_ref(1.0 * out.loss.item<double>());
  EXPECT_GT(std::abs(released - out.loss.item<double>()), 1e-3);
  out.loss.backward();
  const torch::Tensor g = pol.grad().sum(2).squeeze(0);
  EXPECT_LT(g[0].item<double>(), 0.0);  // descending the loss raises the best response
  EXPECT_GT(g[2].item<double>(), 0.0);  // and lowers the worst
}

TEST(ListwiseDeviations, PROUsesLogSumExpWhereTheCodeExponentiatesRawValues) {
  // s_k D = -800: exp(-800) underflows to 0 in float64, so the raw form's ratio exp(-800) / (exp(-800) +
  // exp(-802)) is 0 / 0; the log-sum-exp form gives the exact value log(1 + exp(-2)).
  const torch::Tensor p = torch::tensor({{-400.0, -401.0}}, torch::kDouble).requires_grad_();
  const torch::Tensor r = torch::tensor({{3.0, 1.0}}, torch::kDouble);
  const auto out = F::pro_loss(p, {}, r, {}, PROLossOptions().length_normalize(false).sft_weight(0.0));
  const double raw_numerator = std::exp(-400.0 * 2), raw_denominator = raw_numerator + std::exp(-401.0 * 2);
  EXPECT_TRUE(std::isnan(-std::log(raw_numerator / raw_denominator)));
  const double expected = std::log1p(std::exp(-2.0));
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-12);
  out.loss.backward();
  EXPECT_TRUE(p.grad().isfinite().all().item<bool>());
}

TEST(ListwiseDeviations, PROOfficialEpsilonIsTheReleasedCodesForm) {
  // The released code's term, written from its expression: log(1e-10 + exp(s_k D*) + sum_i exp(s_i D_ki)) - s_k D*,
  // over the responses with a strictly worse one; here in float64 with values that do not underflow.
  const std::vector<double> s = {-1.5, -2.0, -0.5}, r = {3.0, 1.0, 2.0};
  double expected = 0.0;
  for (size_t k = 0; k < 3; ++k) {
    double d_star = -1.0, sum = 1e-10;
    for (size_t i = 0; i < 3; ++i) {
      if (r[i] < r[k]) d_star = std::max(d_star, r[k] - r[i]);
    }
    if (d_star < 0) continue;
    sum += std::exp(s[k] * d_star);
    for (size_t i = 0; i < 3; ++i) {
      if (r[i] < r[k]) sum += std::exp(s[i] * (r[k] - r[i]));
    }
    expected += std::log(sum) - s[k] * d_star;
  }
  const torch::Tensor p = torch::tensor(s, torch::kDouble).unsqueeze(0), labels = torch::tensor(r, torch::kDouble).unsqueeze(0);
  const auto official = F::pro_loss(p, {}, labels, {},
                                    PROLossOptions().length_normalize(false).sft_weight(0.0).official_epsilon(true));
  EXPECT_NEAR(official.loss.item<double>(), expected, 1e-12);
  // Where every exponential underflows, the epsilon keeps the term finite at about ln(1e-10) - s_k D*.
  const auto tiny = F::pro_loss(torch::tensor({{-400.0, -401.0}}, torch::kDouble), {},
                                torch::tensor({{3.0, 1.0}}, torch::kDouble), {},
                                PROLossOptions().length_normalize(false).sft_weight(0.0).official_epsilon(true));
  EXPECT_NEAR(tiny.loss.item<double>(), std::log(1e-10) + 800.0, 1e-9);
}

TEST(ListwiseDeviations, IRPOAveragesOverListsByDefaultWhereTheCodeSums) {
  const Lists l = testing::random_lists(6, 4, 22);
  const auto mean = F::irpo_loss(l.policy(), l.ref(), l.labels(), l.mask());
  const auto sum = F::irpo_loss(l.policy(), l.ref(), l.labels(), l.mask(), {}, IRPOLossOptions().reduction(torch::kSum));
  double official = 0;  // the code: total_loss += sample_loss over the lists
  for (int64_t b = 0; b < l.B; ++b) official += irpo_ref(l, b, 1.0, kDCG);
  EXPECT_NEAR(sum.loss.item<double>(), official, 1e-12);
  EXPECT_NEAR(mean.loss.item<double>(), official / l.B, 1e-12);
}

// ---------------------------------------------------------------------------------------------------------
// Gradients
// ---------------------------------------------------------------------------------------------------------

TEST(ListwiseGradients, FiniteDifferences) {
  const Lists l = testing::random_lists(3, 4, 23, /*levels=*/3, /*min_len=*/2);
  const torch::Tensor labels = l.labels(), mask = l.mask();
  const torch::Tensor lengths = torch::tensor({3.0, 5.0, 2.0, 7.0, 1.0, 4.0, 9.0, 2.0, 3.0, 3.0, 6.0, 1.0},
                                              torch::kDouble).view({3, 4});
  using Fn = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;
  const std::vector<std::pair<const char*, Fn>> cases = {
      {"plackett_luce", [&](const auto& in) { return F::plackett_luce_loss(in[0], in[1], labels, mask, PlackettLuceLossOptions().beta(0.3).reduction(torch::kNone)).losses; }},
      {"plackett_luce top_m", [&](const auto& in) { return F::plackett_luce_loss(in[0], in[1], labels, mask, PlackettLuceLossOptions().beta(0.3).top_m(1).reduction(torch::kNone)).losses; }},
      {"all_pairs", [&](const auto& in) { return F::all_pairs_loss(in[0], in[1], labels, mask, AllPairsLossOptions().beta(0.3).reduction(torch::kNone)).losses; }},
      {"lipo", [&](const auto& in) { return F::lipo_lambda_loss(in[0], in[1], labels, mask, LiPOLambdaLossOptions().beta(0.3).reduction(torch::kNone)).losses; }},
      {"irpo", [&](const auto& in) { return F::irpo_loss(in[0], in[1], labels, mask, lengths, IRPOLossOptions().beta(0.3).length_normalize(true).reduction(torch::kNone)).losses; }},
      {"pro", [&](const auto& in) { return F::pro_loss(in[0] / 10, lengths, labels, mask, PROLossOptions().reduction(torch::kNone)).losses; }},
      {"ranklist exact", [&](const auto& in) { return F::ranklist_loss(in[0], in[1], labels, mask, RankListLossOptions().beta(0.3).reduction(torch::kNone)).losses; }},
      {"ranklist lse", [&](const auto& in) { return F::ranklist_loss(in[0], in[1], labels, mask, RankListLossOptions().beta(0.3).form(kLogSumExp).window(1).reduction(torch::kNone)).losses; }},
  };
  for (const auto& [name, fn] : cases) {
    SCOPED_TRACE(name);
    testing::expect_gradcheck(fn, {l.policy(torch::kDouble, true), l.ref(torch::kDouble, true)});
  }
  torch::manual_seed(8);
  const torch::Tensor step_mask = torch::rand({3, 4, 2}).gt(0.2);
  const torch::Tensor w = torch::rand({3, 4, 2}, torch::kDouble) + 0.5;
  SCOPED_TRACE("tpo");
  testing::expect_gradcheck(
      [&](const auto& in) { return F::tpo_loss(in[0], in[1], step_mask, w, labels, mask, TPOLossOptions().beta(0.5).reduction(torch::kNone)).losses; },
      {torch::randn({3, 4, 2}, torch::kDouble).requires_grad_(), torch::randn({3, 4, 2}, torch::kDouble).requires_grad_()});
}

TEST(ListwiseGradients, PaddingGetsNoGradientAndLabelsNone) {
  const Lists l = testing::random_lists(4, 5, 24, 3, 2);
  const torch::Tensor p = l.policy(torch::kDouble, true);
  const auto out = F::lipo_lambda_loss(p, l.ref(), l.labels(), l.mask());
  out.loss.backward();
  const torch::Tensor invalid = l.mask().logical_not();
  EXPECT_EQ(p.grad().masked_select(invalid).abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(out.rewards.requires_grad());
  EXPECT_FALSE(out.chosen_rewards.requires_grad());
}

// ---------------------------------------------------------------------------------------------------------
// Low precision, edge cases
// ---------------------------------------------------------------------------------------------------------

// Runs every list loss with defaults (reduction none) on the given inputs.
std::vector<std::pair<std::string, LossOutput>> every_loss(const torch::Tensor& p, const torch::Tensor& q,
                                                           const torch::Tensor& y, const torch::Tensor& m) {
  const torch::Tensor lengths = torch::full(p.sizes(), 4.0, p.options());
  const torch::Tensor steps_p = p.unsqueeze(2).expand({p.size(0), p.size(1), 2}).contiguous();
  const torch::Tensor steps_q = q.unsqueeze(2).expand({p.size(0), p.size(1), 2}).contiguous();
  return {
      {"plackett_luce", F::plackett_luce_loss(p, q, y, m, PlackettLuceLossOptions().reduction(torch::kNone))},
      {"all_pairs", F::all_pairs_loss(p, q, y, m, AllPairsLossOptions().reduction(torch::kNone))},
      {"lipo", F::lipo_lambda_loss(p, q, y, m, LiPOLambdaLossOptions().reduction(torch::kNone))},
      {"irpo", F::irpo_loss(p, q, y, m, {}, IRPOLossOptions().reduction(torch::kNone))},
      {"pro", F::pro_loss(p, lengths, y, m, PROLossOptions().reduction(torch::kNone))},
      {"tpo", F::tpo_loss(steps_p, steps_q, {}, {}, y, m, TPOLossOptions().reduction(torch::kNone))},
      {"ranklist", F::ranklist_loss(p, q, y, m, RankListLossOptions().reduction(torch::kNone))},
      {"ranklist lse", F::ranklist_loss(p, q, y, m, RankListLossOptions().form(kLogSumExp).reduction(torch::kNone))},
  };
}

TEST(ListwiseEdgeCases, BFloat16InputsMatchTheFloat64LossOfTheRoundedInputs) {
  const Lists l = testing::random_lists(16, 5, 25);
  const torch::Tensor p16 = l.policy(torch::kBFloat16), q16 = l.ref(torch::kBFloat16);
  const auto low = every_loss(p16, q16, l.labels(), l.mask());
  const auto high = every_loss(p16.to(torch::kDouble), q16.to(torch::kDouble), l.labels(), l.mask());
  for (size_t i = 0; i < low.size(); ++i) {
    SCOPED_TRACE(low[i].first);
    EXPECT_EQ(low[i].second.losses.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(low[i].second.rewards.scalar_type(), torch::kBFloat16);
    const torch::Tensor ref = high[i].second.losses;
    // One bf16 rounding of the output on top of float32 arithmetic.
    EXPECT_TRUE(torch::allclose(low[i].second.losses.to(torch::kDouble), ref, /*rtol=*/1e-2, /*atol=*/1e-2));
  }
}

TEST(ListwiseEdgeCases, SingleResponseListsAllTiedListsAndFullyMaskedListsGiveZero) {
  torch::manual_seed(9);
  const torch::Tensor one_p = torch::randn({3, 1}), one_q = torch::randn({3, 1});
  for (const auto& [name, out] : every_loss(one_p, one_q, torch::zeros({3, 1}), {})) {
    EXPECT_TRUE(torch::equal(out.losses, torch::zeros({3}))) << "K = 1 " << name;
  }
  const torch::Tensor p = torch::randn({3, 4}), q = torch::randn({3, 4});
  for (const auto& [name, out] : every_loss(p, q, torch::full({3, 4}, 2.0), {})) {
    // IRPO compares each response with the mean of all others (no label pairs): see IRPOLoss.TiedRelevance.
    if (name == "irpo") continue;
    if (name == "pro") {
      // No ranking term; PRO's SFT term w (n - 1)^2 (-p_best) stays, on the first of the tied responses.
      EXPECT_TRUE(torch::allclose(out.losses, 0.05 * 9 * -p.select(1, 0))) << "tied pro";
      continue;
    }
    EXPECT_TRUE(torch::equal(out.losses, torch::zeros({3}))) << "tied " << name;
  }
  torch::Tensor mask = torch::ones({3, 4}, torch::kBool);
  mask[1].fill_(false);
  const torch::Tensor labels = torch::tensor({{3, 2, 1, 0}, {3, 2, 1, 0}, {0, 1, 2, 3}});
  for (const auto& [name, out] : every_loss(p, q, labels, mask)) {
    EXPECT_EQ(out.losses[1].item<float>(), 0.0f) << "masked " << name;
    EXPECT_GT(out.losses[0].item<float>(), 0.0f) << name;
    EXPECT_TRUE(out.rewards[1].eq(0).all().item<bool>()) << name;
    EXPECT_EQ(out.chosen_rewards[1].item<float>(), 0.0f) << name;
  }
}

TEST(ListwiseEdgeCases, PaddedListsEqualTheirUnpaddedSelves) {
  const Lists l = distinct_lists(6, 5, 26, /*min_len=*/1);
  Lists garbage = l;  // padding holds NaN and infinities: never read
  for (int64_t i = 0; i < l.B * l.K; ++i)
    if (!l.m[i]) {
      garbage.p[i] = std::numeric_limits<double>::quiet_NaN();
      garbage.q[i] = -std::numeric_limits<double>::infinity();
      garbage.y[i] = 99;
    }
  const auto padded = every_loss(garbage.policy(), garbage.ref(), garbage.labels(), garbage.mask());
  for (int64_t b = 0; b < l.B; ++b) {
    const int64_t n = static_cast<int64_t>(l.valid(b).size());
    const auto row = [&](const torch::Tensor& t) { return t.slice(0, b, b + 1).slice(1, 0, n); };
    const auto alone = every_loss(row(l.policy()), row(l.ref()), row(l.labels()), {});
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_NEAR(padded[i].second.losses[b].item<double>(), alone[i].second.losses[0].item<double>(), 1e-12)
          << padded[i].first << " list " << b;
    }
  }
}

TEST(ListwiseEdgeCases, ExtremeScoresStayFinite) {
  const torch::Tensor p = torch::tensor({{1e4, -1e4, 0.0, 5e3}, {-1e4, 1e4, -5e3, 0.0}});
  const torch::Tensor q = torch::zeros({2, 4});
  const torch::Tensor labels = torch::tensor({{3, 2, 1, 0}, {3, 2, 1, 0}});
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kDouble}) {
    const torch::Tensor pp = p.to(dtype).requires_grad_();
    for (const auto& [name, out] : every_loss(pp, q.to(dtype), labels, {})) {
      EXPECT_TRUE(out.losses.isfinite().all().item<bool>()) << name << " " << dtype;
      const auto grads = torch::autograd::grad({out.losses.sum()}, {pp}, {}, /*retain_graph=*/true);
      EXPECT_TRUE(grads[0].isfinite().all().item<bool>()) << name << " " << dtype;
    }
  }
}

TEST(ListwiseEdgeCases, MetricsAndRewards) {
  const torch::Tensor p = torch::tensor({{-1.0, -2.0, -3.0}, {-3.0, -2.0, -1.0}}, torch::kDouble);
  const torch::Tensor labels = torch::tensor({{2, 1, 0}, {2, 1, 0}});
  const auto out = F::plackett_luce_loss(p, torch::zeros_like(p), labels, {}, PlackettLuceLossOptions().beta(1.0));
  EXPECT_TRUE(torch::equal(out.rewards, p));
  EXPECT_TRUE(torch::equal(out.chosen_rewards, torch::tensor({-1.0, -3.0}, torch::kDouble)));
  EXPECT_TRUE(torch::equal(out.rejected_rewards, torch::tensor({-3.0, -1.0}, torch::kDouble)));
  EXPECT_NEAR(out.metrics.at("rewards/accuracies").item<float>(), 0.5f, 1e-6);
  EXPECT_NEAR(out.metrics.at("rewards/kendall_tau").item<float>(), 0.0f, 1e-6);
  EXPECT_NEAR(out.metrics.at("rewards/margins").item<float>(), 0.0f, 1e-6);
  for (const auto& [name, value] : out.metrics) {
    EXPECT_EQ(value.dim(), 0) << name;
    EXPECT_EQ(value.scalar_type(), torch::kFloat) << name;
  }
  const auto sum = F::plackett_luce_loss(p, torch::zeros_like(p), labels, {}, PlackettLuceLossOptions().reduction(torch::kSum));
  EXPECT_NEAR(sum.loss.item<double>(), sum.losses.sum().item<double>(), 1e-12);
}

TEST(ListwiseEdgeCases, ReferenceFreeIgnoresTheReference) {
  const Lists l = testing::random_lists(4, 4, 27);
  const auto a = F::ranklist_loss(l.policy(), {}, l.labels(), l.mask(), RankListLossOptions().reference_free(true));
  const auto b = F::ranklist_loss(l.policy(), torch::zeros({4, 4}, torch::kDouble), l.labels(), l.mask());
  EXPECT_NEAR(a.loss.item<double>(), b.loss.item<double>(), 1e-12);
}

// ---------------------------------------------------------------------------------------------------------
// Modules and bad input
// ---------------------------------------------------------------------------------------------------------

TEST(ListwiseModules, DelegateToTheFunctionalForms) {
  const Lists l = testing::random_lists(4, 4, 28);
  PlackettLuceLoss pl(PlackettLuceLossOptions().beta(0.2).top_m(2));
  EXPECT_TRUE(torch::equal(pl(l.policy(), l.ref(), l.labels(), l.mask()).losses,
                           F::plackett_luce_loss(l.policy(), l.ref(), l.labels(), l.mask(), pl->options).losses));
  IRPOLoss irpo(IRPOLossOptions().weighting(kDiscount));
  EXPECT_TRUE(torch::equal(irpo(l.policy(), l.ref(), l.labels(), l.mask()).losses,
                           F::irpo_loss(l.policy(), l.ref(), l.labels(), l.mask(), {}, irpo->options).losses));
  RankListLoss rl(RankListLossOptions().form(kLogSumExp));
  std::ostringstream printed;
  printed << *rl << *irpo << *pl << *LiPOLambdaLoss() << *AllPairsLoss() << *PROLoss() << *TPOLoss();
  EXPECT_NE(printed.str().find("form=logsumexp"), std::string::npos);
  EXPECT_NE(printed.str().find("weighting=discount"), std::string::npos);
  EXPECT_EQ(irpo_weighting_from_string("linear_discount"), kLinearDiscount);
  EXPECT_EQ(ranklist_form_from_string("exact"), kExact);
}

TEST(ListwiseBadInput, ClearErrors) {
  using testing::expect_error;
  const torch::Tensor x = torch::randn({2, 3});
  const torch::Tensor y = torch::tensor({{2, 1, 0}, {0, 1, 2}});
  expect_error([&] { F::plackett_luce_loss(torch::randn({3}), x, y); }, "policy_logps must have shape [B, K], got [3]");
  expect_error([&] { F::plackett_luce_loss(x, torch::randn({2, 4}), y); },
               "ref_logps must have shape [2, 3] matching policy_logps, got [2, 4]");
  expect_error([&] { F::all_pairs_loss(x, x.to(torch::kDouble), y); },
               "ref_logps must have the dtype of policy_logps (Float), got Double");
  expect_error([&] { F::all_pairs_loss(x, torch::Tensor(), y); }, "ref_logps must be a tensor of shape [2, 3] matching policy_logps");
  expect_error([&] { F::lipo_lambda_loss(x, x, torch::ones({2, 2})); }, "labels must have shape [2, 3] matching policy_logps, got [2, 2]");
  expect_error([&] { F::lipo_lambda_loss(x, x, y, torch::ones({3})); }, "mask must have shape [2, 3] matching policy_logps, got [3]");
  expect_error([&] { F::lipo_lambda_loss(x, x, y.gt(0)); }, "labels must hold integer or floating grades or ranks, got Bool");
  expect_error([&] { F::irpo_loss(torch::randn({0, 3}), torch::randn({0, 3}), torch::zeros({0, 3})); },
               "policy_logps must hold at least one list of at least one response, got shape [0, 3]");
  expect_error([&] { F::irpo_loss(x, x, y, {}, {}, IRPOLossOptions().length_normalize(true)); },
               "lengths must be a tensor of shape [2, 3] matching policy_logps when length_normalize is set");
  expect_error([&] { F::irpo_loss(x, x, y, {}, {}, IRPOLossOptions().beta(0)); }, "beta must be in (0, ");
  expect_error([&] { F::plackett_luce_loss(x, x, y, {}, PlackettLuceLossOptions().top_m(-1)); },
               "top_m must be >= 0 (0 = every position), got -1");
  expect_error([&] { F::ranklist_loss(x, x, y, {}, RankListLossOptions().min_margin(-1)); }, "min_margin must be in [0, ");
  expect_error([&] { F::ranklist_loss(x, x, y, {}, RankListLossOptions().window(-2)); }, "window must be >= 0 (0 = every pair), got -2");
  expect_error([&] { F::pro_loss(x, torch::Tensor(), y); },
               "lengths must be a tensor of shape [2, 3] matching policy_logps (or pass length_normalize=false)");
  expect_error([&] { F::pro_loss(x, torch::ones({2, 3}), y, {}, PROLossOptions().sft_weight(-0.5)); },
               "sft_weight must be in [0, ");
  torch::Tensor nan = torch::randn({2, 3});
  nan[1][2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { F::plackett_luce_loss(nan, x, y); }, "policy_logps must be finite where the mask is set, got nan at [1, 2]");
  torch::Tensor mask = torch::ones({2, 3}, torch::kBool);
  mask[1][2] = false;
  EXPECT_NO_THROW(F::plackett_luce_loss(nan, x, y, mask));  // padding may hold anything
  expect_error([&] { F::lipo_lambda_loss(x, x, torch::tensor({{2000.0, 1.0, 0.0}, {0.0, 1.0, 2.0}})); },
               "labels must be small enough for the gain 2^label - 1 to be finite in Float, got 2000 at [0, 0]");
  expect_error([&] { F::tpo_loss(torch::randn({2, 3}), torch::randn({2, 3}), {}, {}, y); },
               "policy_step_logps must have shape [B, K, S], got [2, 3]");
  expect_error([&] { F::tpo_loss(torch::randn({2, 3, 2}), torch::randn({2, 3, 2}), {}, torch::ones({2, 3}), y); },
               "step_weights must have shape [2, 3, 2] matching policy_step_logps, got [2, 3]");
  expect_error([&] { F::tpo_loss(torch::randn({2, 3, 2}), torch::randn({2, 3, 2}), {}, {}, torch::ones({2, 2})); },
               "labels must have shape [2, 3] matching the first two dims of policy_step_logps, got [2, 2]");
  expect_error([&] { F::tpo_step_weights(torch::randn({2, 3, 2}), {}, y); },
               "step_embeddings must have shape [B, K, S, E], got [2, 3, 2]");
  expect_error([&] { irpo_weighting_from_string("ndcg"); },
               "weighting must be one of: dcg, discount, linear_discount, uniform; got 'ndcg'");
  expect_error([&] { ranklist_form_from_string("lse"); }, "form must be one of: exact, logsumexp; got 'lse'");
}

}  // namespace
}  // namespace prefopt
