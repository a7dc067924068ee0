// Tests of the pairwise_margin_reduce operator (LOSSES.md section 5): per-anchor R_i = sum_j w_ij f(s_i - s_j) (or
// the log of sum_j w_ij exp(+-(s_i - s_j))) and W_i = sum_j w_ij, against a float64 [B, K, K] ATen composite
// written from the formula (forward, and backward by autograd of it) and plain loops; finite differences; the
// loss forms the listwise losses need (all-pairs mean, LiPO-lambda, IRPO, RankList log-sum-exp); edge cases (K = 1,
// masked lists, ties, large K); the low-precision rule; bad input. CUDA against CPU skips without a device.
#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include "../../kernels/pairwise_margin_reduce.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

using ops::PairwiseMarginOptions;
using Opt = std::optional<torch::Tensor>;

const double kInf = std::numeric_limits<double>::infinity();

struct Inputs {
  torch::Tensor scores;
  Opt labels, mask, gain, discount, positions;
};

// The formula as an ATen composite over [B, K, K]: x[b, i, j] = s_i - s_j.
std::tuple<torch::Tensor, torch::Tensor> composite(const Inputs& in, const PairwiseMarginOptions& o) {
  const torch::Tensor s = in.scores;
  const int64_t k = s.size(1);
  const torch::Tensor x = s.unsqueeze(2) - s.unsqueeze(1);
  torch::Tensor w = (1 - torch::eye(k, s.options())).unsqueeze(0).expand_as(x).clone();
  auto pair_of = [](const torch::Tensor& t) { return t.unsqueeze(2) - t.unsqueeze(1); };
  if (in.mask) w = w * (in.mask->unsqueeze(2) & in.mask->unsqueeze(1)).to(s.scalar_type());
  if (o.pairs() == "label_order") w = w * (pair_of(in.labels->to(s.scalar_type())) > o.label_margin()).to(s.scalar_type());
  if (in.positions && o.max_distance() >= 0) {
    w = w * (pair_of(in.positions->to(s.scalar_type())).abs() <= double(o.max_distance())).to(s.scalar_type());
  }
  if (in.gain) w = w * pair_of(in.gain->to(s.scalar_type())).abs();
  if (in.discount) w = w * pair_of(in.discount->to(s.scalar_type())).abs();
  const torch::Tensor has = w > 0;
  const torch::Tensor weight_sum = w.sum(-1);
  if (o.reduce() == "sum") {
    torch::Tensor f;
    if (o.fn() == "logsigmoid") f = torch::log_sigmoid(x);
    if (o.fn() == "log1p_exp_neg") f = torch::softplus(-x);
    if (o.fn() == "exp") f = x.exp();
    if (o.fn() == "exp_neg") f = (-x).exp();
    return {torch::where(has, w * f, torch::zeros_like(f)).sum(-1), weight_sum};
  }
  const double sign = o.fn() == "exp" ? 1.0 : -1.0;
  const torch::Tensor any = has.any(-1);
  const torch::Tensor terms = torch::where(has, sign * x + w.clamp_min(1e-300).log(), torch::full_like(x, -kInf));
  const torch::Tensor safe = torch::where(any.unsqueeze(-1), terms, torch::zeros_like(terms));
  return {torch::where(any, torch::logsumexp(safe, -1), torch::full_like(weight_sum, -kInf)), weight_sum};
}

std::tuple<torch::Tensor, torch::Tensor> fused(const Inputs& in, const PairwiseMarginOptions& o) {
  return ops::pairwise_margin_reduce(in.scores, in.labels, in.mask, in.gain, in.discount, in.positions, o);
}

Inputs random_inputs(int64_t b, int64_t k, bool with_mask, bool with_gain, bool with_discount, bool with_positions,
                     torch::ScalarType dtype = torch::kDouble) {
  Inputs in;
  in.scores = (2 * torch::randn({b, k}, torch::kDouble)).to(dtype);
  in.labels = torch::randint(0, 4, {b, k}, torch::kLong);  // ties on purpose
  if (with_mask) in.mask = torch::rand({b, k}) > 0.25;
  if (with_gain) in.gain = torch::pow(2.0, in.labels->to(torch::kDouble)) - 1;
  if (with_discount) in.discount = 1.0 / torch::log1p(torch::randperm(k, torch::kDouble).add(1).repeat({b, 1}));
  if (with_positions) in.positions = torch::argsort(torch::argsort(-in.labels->to(torch::kDouble), /*dim=*/1, false), 1, false);
  return in;
}

struct Config {
  std::string fn, reduce, pairs;
};

TEST(PairwiseMarginReduce, MatchesCompositeForEveryConfiguration) {
  torch::manual_seed(7);
  const std::vector<Config> configs = {
      {"logsigmoid", "sum", "label_order"}, {"log1p_exp_neg", "sum", "label_order"}, {"exp", "sum", "label_order"},
      {"exp_neg", "sum", "all"},           {"exp_neg", "logsumexp", "label_order"}, {"exp", "logsumexp", "all"},
      {"log1p_exp_neg", "sum", "all"}};
  for (const Config& c : configs) {
    for (int variant = 0; variant < 8; ++variant) {
      Inputs in = random_inputs(3, 7, variant & 1, variant & 2, variant & 4, variant == 7);
      const auto o = PairwiseMarginOptions()
                         .fn(c.fn)
                         .reduce(c.reduce)
                         .pairs(c.pairs)
                         .label_margin(variant == 3 ? 1.0 : 0.0)
                         .max_distance(variant == 7 ? 2 : -1);
      torch::Tensor s1 = in.scores.clone().requires_grad_(), s2 = in.scores.clone().requires_grad_();
      Inputs a = in, b = in;
      a.scores = s1;
      b.scores = s2;
      const auto [r, w] = fused(a, o);
      const auto [r_ref, w_ref] = composite(b, o);
      const std::string what = c.fn + "/" + c.reduce + "/" + c.pairs + " variant " + std::to_string(variant);
      ASSERT_EQ(r.scalar_type(), torch::kDouble);
      EXPECT_TRUE(torch::allclose(r, r_ref, 1e-12, 1e-12, /*equal_nan=*/true)) << what << "\n" << r << "\n" << r_ref;
      EXPECT_TRUE(torch::allclose(w, w_ref, 1e-12, 1e-12)) << what;
      EXPECT_FALSE(w.requires_grad());
      const torch::Tensor g = torch::randn({3, 7}, torch::kDouble);
      // Anchors without a pair have R = -inf in the log-sum-exp form: their upstream gradient is irrelevant.
      (torch::where(r.isfinite(), r, torch::zeros_like(r)) * g).sum().backward();
      (torch::where(r_ref.isfinite(), r_ref, torch::zeros_like(r_ref)) * g).sum().backward();
      EXPECT_TRUE(torch::allclose(s1.grad(), s2.grad(), 1e-12, 1e-12)) << what << "\n" << s1.grad() << "\n" << s2.grad();
    }
  }
}

TEST(PairwiseMarginReduce, FiniteDifferenceGradcheck) {
  torch::manual_seed(3);
  Inputs in = random_inputs(2, 6, true, true, true, false);
  for (const Config& c : {Config{"log1p_exp_neg", "sum", "label_order"}, Config{"logsigmoid", "sum", "all"},
                          Config{"exp_neg", "logsumexp", "all"}, Config{"exp", "sum", "label_order"}}) {
    const auto o = PairwiseMarginOptions().fn(c.fn).reduce(c.reduce).pairs(c.pairs);
    Inputs x = in;
    x.mask = torch::ones({2, 6}, torch::kBool);  // every anchor has a pair: R finite everywhere
    testing::expect_gradcheck(
        [&](const std::vector<torch::Tensor>& v) {
          Inputs y = x;
          y.scores = v[0];
          return std::get<0>(fused(y, o));
        },
        {torch::randn({2, 6}, torch::kDouble).requires_grad_()});
  }
}

TEST(PairwiseMarginReduce, LargeListsInFloat32) {
  torch::manual_seed(4);
  Inputs in = random_inputs(2, 513, true, true, true, false, torch::kFloat);
  in.labels = torch::randint(0, 50, {2, 513}, torch::kLong);
  const auto o = PairwiseMarginOptions();
  Inputs d = in;
  d.scores = in.scores.to(torch::kDouble);
  const auto [r, w] = fused(in, o);
  const auto [r_ref, w_ref] = composite(d, o);
  EXPECT_EQ(r.scalar_type(), torch::kFloat);
  EXPECT_LT(((r.to(torch::kDouble) - r_ref).abs() / r_ref.abs().clamp_min(1)).max().item<double>(), 1e-5);
}

TEST(PairwiseMarginReduce, EdgeCases) {
  // K = 1: no pair. Tied scores: log sigmoid(0) = -log 2. A fully masked list: zeros and zero gradient.
  torch::Tensor one = torch::randn({3, 1}).requires_grad_();
  const auto [r1, w1] = ops::pairwise_margin_reduce(one, torch::zeros({3, 1}), {}, {}, {}, {});
  EXPECT_TRUE(torch::equal(r1, torch::zeros({3, 1})));
  EXPECT_TRUE(torch::equal(w1, torch::zeros({3, 1})));
  r1.sum().backward();
  EXPECT_TRUE(torch::equal(one.grad(), torch::zeros({3, 1})));
  const auto lse1 = ops::pairwise_margin_reduce(torch::randn({2, 1}), {}, {}, {}, {}, {},
                                                PairwiseMarginOptions().fn("exp_neg").reduce("logsumexp").pairs("all"));
  EXPECT_TRUE(std::get<0>(lse1).eq(-kInf).all().item<bool>());

  const torch::Tensor tied = torch::zeros({1, 3}, torch::kDouble);
  const auto [rt, wt] = ops::pairwise_margin_reduce(tied, torch::tensor({{2, 1, 0}}), {}, {}, {}, {},
                                                    PairwiseMarginOptions().fn("logsigmoid"));
  EXPECT_NEAR(rt[0][0].item<double>(), -2 * std::log(2.0), 1e-15);
  EXPECT_NEAR(rt[0][1].item<double>(), -std::log(2.0), 1e-15);
  EXPECT_EQ(rt[0][2].item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(wt, torch::tensor({{2.0, 1.0, 0.0}}, torch::kDouble)));
  // Tied labels never form a pair.
  const auto [rl, wl] = ops::pairwise_margin_reduce(torch::randn({1, 4}), torch::ones({1, 4}), {}, {}, {}, {});
  EXPECT_EQ(wl.sum().item<double>(), 0.0);

  torch::Tensor masked = torch::randn({2, 5}).requires_grad_();
  torch::Tensor mask = torch::ones({2, 5}, torch::kBool);
  mask[1].fill_(false);
  const auto [rm, wm] = ops::pairwise_margin_reduce(masked, torch::arange(10).view({2, 5}), mask, {}, {}, {});
  EXPECT_TRUE(torch::equal(rm[1], torch::zeros({5})));
  rm.sum().backward();
  EXPECT_TRUE(torch::equal(masked.grad()[1], torch::zeros({5})));
  EXPECT_TRUE(masked.grad()[0].ne(0).any().item<bool>());
  // Extreme score gaps stay finite for the softplus forms: anchor 2 (best label) against item 0 (s_2 - s_0 =
  // -1e4: softplus(1e4) = 1e4) and item 1 (s_2 - s_1 = 1e4: softplus(-1e4) = 0).
  const torch::Tensor far = torch::tensor({{1e4, -1e4, 0.0}});
  const auto [rf, wf] = ops::pairwise_margin_reduce(far, torch::tensor({{0, 1, 2}}), {}, {}, {}, {});
  EXPECT_TRUE(rf.isfinite().all().item<bool>());
  EXPECT_NEAR(rf[0][2].item<double>(), 1e4, 1e-3);
  // Empty batch.
  EXPECT_EQ(std::get<0>(ops::pairwise_margin_reduce(torch::randn({0, 4}), torch::zeros({0, 4}), {}, {}, {}, {})).numel(), 0);
}

// The forms LOSSES.md section 5 needs, written directly from their formulas with plain loops.
TEST(PairwiseMarginReduce, ListwiseLossForms) {
  torch::manual_seed(9);
  const int64_t k = 6;
  const torch::Tensor s = torch::randn({1, k}, torch::kDouble);
  const torch::Tensor psi = torch::tensor({{3, 1, 2, 0, 2, 1}}, torch::kDouble);
  auto S = [&](int64_t i) { return s[0][i].item<double>(); };
  auto P = [&](int64_t i) { return psi[0][i].item<double>(); };
  auto softplus = [](double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); };

  // All-pairs DPO: mean over valid pairs (psi_i > psi_j) of -log sigmoid(s_i - s_j).
  double total = 0, count = 0;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      if (P(i) > P(j)) total += softplus(-(S(i) - S(j))), count += 1;
  const auto [r, w] = ops::pairwise_margin_reduce(s, psi, {}, {}, {}, {});
  EXPECT_NEAR((r.sum() / w.sum()).item<double>(), total / count, 1e-12);

  // LiPO-lambda: Delta_ij = |G_i - G_j| |1/D(tau_i) - 1/D(tau_j)|, G = 2^psi - 1, D(tau) = log(1 + tau), tau the
  // 1-based rank of s (descending).
  const torch::Tensor tau = torch::argsort(torch::argsort(-s, /*dim=*/1, false), 1, false).to(torch::kDouble) + 1;
  double lipo = 0;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      if (P(i) > P(j)) {
        const double d = std::abs(std::pow(2, P(i)) - std::pow(2, P(j))) *
                         std::abs(1 / std::log1p(tau[0][i].item<double>()) - 1 / std::log1p(tau[0][j].item<double>()));
        lipo += d * std::log1p(std::exp(-(S(i) - S(j))));
      }
  const auto [rl, wl] =
      ops::pairwise_margin_reduce(s, psi, {}, torch::pow(2.0, psi) - 1, 1.0 / torch::log1p(tau), {});
  EXPECT_NEAR(rl.sum().item<double>(), lipo, 1e-12);

  // IRPO: A_k = log((1/(K-1)) sum_{j != k} exp(s_j - s_k)).
  const auto [ri, wi] = ops::pairwise_margin_reduce(s, {}, {}, {}, {}, {},
                                                    PairwiseMarginOptions().fn("exp_neg").reduce("logsumexp").pairs("all"));
  for (int64_t a = 0; a < k; ++a) {
    double sum = 0;
    for (int64_t j = 0; j < k; ++j)
      if (j != a) sum += std::exp(S(j) - S(a));
    EXPECT_NEAR(ri[0][a].item<double>() - std::log(double(k - 1)), std::log(sum / (k - 1)), 1e-12);
  }

  // RankList log-sum-exp form with margin W = 1: sum_i log(1 + sum_{j: y_i > y_j + 1} exp(s_j - s_i)).
  double ranklist = 0;
  for (int64_t i = 0; i < k; ++i) {
    double inner = 0;
    for (int64_t j = 0; j < k; ++j)
      if (P(i) > P(j) + 1) inner += std::exp(S(j) - S(i));
    ranklist += std::log1p(inner);
  }
  const auto [rr, wr] = ops::pairwise_margin_reduce(
      s, psi, {}, {}, {}, {}, PairwiseMarginOptions().fn("exp_neg").reduce("logsumexp").label_margin(1.0));
  EXPECT_NEAR(torch::softplus(rr).sum().item<double>(), ranklist, 1e-12);
}

void expect_low_precision_rule(torch::ScalarType dtype) {
  torch::manual_seed(11);
  Inputs in = random_inputs(8, 33, true, true, false, false, dtype);
  Inputs d = in;
  d.scores = in.scores.to(torch::kDouble);
  const auto o = PairwiseMarginOptions();
  const torch::Tensor expected = std::get<0>(composite(d, o));
  Inputs low = in;  // the same composite in the low-precision dtype
  low.gain = in.gain->to(dtype);
  const double fused_err = (std::get<0>(fused(in, o)).to(torch::kDouble) - expected).abs().max().item<double>();
  const double comp_err = (std::get<0>(composite(low, o)).to(torch::kDouble) - expected).abs().max().item<double>();
  EXPECT_LE(fused_err, std::max(2 * comp_err, 1e-5)) << "fused " << fused_err << " composite " << comp_err;
  torch::Tensor s = in.scores.clone().requires_grad_();
  Inputs x = in;
  x.scores = s;
  std::get<0>(fused(x, o)).sum().backward();
  EXPECT_EQ(s.grad().scalar_type(), dtype);
}

TEST(PairwiseMarginReduce, BFloat16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kBFloat16); }
TEST(PairwiseMarginReduce, Float16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kHalf); }

using testing::expect_error;

TEST(PairwiseMarginReduce, BadInputGivesClearErrors) {
  const torch::Tensor s = torch::randn({2, 4});
  const torch::Tensor y = torch::zeros({2, 4});
  auto call = [&](const PairwiseMarginOptions& o, Opt labels = torch::zeros({2, 4}), Opt mask = {}, Opt pos = {}) {
    ops::pairwise_margin_reduce(s, labels, mask, {}, {}, pos, o);
  };
  expect_error([&] { call(PairwiseMarginOptions().fn("hinge")); },
               "fn must be one of logsigmoid, log1p_exp_neg, exp, exp_neg, got 'hinge'");
  expect_error([&] { call(PairwiseMarginOptions().reduce("mean")); }, "reduce must be sum or logsumexp, got 'mean'");
  expect_error([&] { call(PairwiseMarginOptions().reduce("logsumexp")); },
               "reduce 'logsumexp' needs fn exp or exp_neg, got 'log1p_exp_neg'");
  expect_error([&] { call(PairwiseMarginOptions().pairs("some")); }, "pairs must be label_order or all, got 'some'");
  expect_error([&] { call(PairwiseMarginOptions(), Opt()); },
               "labels are required with pairs 'label_order' (or use pairs 'all')");
  expect_error([&] { call(PairwiseMarginOptions(), torch::zeros({2, 5})); },
               "labels must have shape [B, K] matching scores [2, 4], got [2, 5]");
  expect_error([&] { call(PairwiseMarginOptions(), y, torch::ones({2, 4})); }, "mask must be bool, got Float");
  expect_error([&] { call(PairwiseMarginOptions().label_margin(-1)); }, "label_margin must be finite and >= 0, got -1");
  expect_error([&] { call(PairwiseMarginOptions().max_distance(2)); },
               "max_distance needs positions (each item's rank in label order)");
  expect_error([&] { call(PairwiseMarginOptions().max_distance(-2), y, {}, y); },
               "max_distance must be >= 0, or -1 for no bound, got -2");
  expect_error([&] { ops::pairwise_margin_reduce(torch::randn({4}), {}, {}, {}, {}, {}); },
               "scores must have shape [B, K], got [4]");
  expect_error([&] { ops::pairwise_margin_reduce(torch::ones({2, 4}, torch::kLong), y, {}, {}, {}, {}); },
               "scores must be a floating tensor");
}

TEST(PairwiseMarginReduceCuda, MatchesCpuKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(21);
  for (int64_t k : {1, 5, 33, 300}) {
    Inputs in = random_inputs(4, k, true, true, true, true, torch::kFloat);
    for (const Config& c : {Config{"log1p_exp_neg", "sum", "label_order"}, Config{"exp_neg", "logsumexp", "all"}}) {
      const auto o = PairwiseMarginOptions().fn(c.fn).reduce(c.reduce).pairs(c.pairs).max_distance(3);
      torch::Tensor sc = in.scores.clone().requires_grad_(), sg = in.scores.cuda().requires_grad_();
      auto to_cuda = [](const Opt& t) { return t ? Opt(t->cuda()) : Opt(); };
      const auto [rc, wc] = ops::pairwise_margin_reduce(sc, in.labels, in.mask, in.gain, in.discount, in.positions, o);
      const auto [rg, wg] = ops::pairwise_margin_reduce(sg, to_cuda(in.labels), to_cuda(in.mask), to_cuda(in.gain),
                                                        to_cuda(in.discount), to_cuda(in.positions), o);
      EXPECT_TRUE(torch::allclose(rc, rg.cpu(), 1e-5, 1e-5, true));
      EXPECT_TRUE(torch::allclose(wc, wg.cpu(), 1e-5, 1e-5));
      torch::where(rc.isfinite(), rc, torch::zeros_like(rc)).sum().backward();
      torch::where(rg.isfinite(), rg, torch::zeros_like(rg)).sum().backward();
      EXPECT_TRUE(torch::allclose(sc.grad(), sg.grad().cpu(), 1e-4, 1e-5));
    }
  }
}

}  // namespace
}  // namespace prefopt
