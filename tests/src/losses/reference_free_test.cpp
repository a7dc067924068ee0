// Tests of SimPO, CPO and ORPO (functional forms and modules): per-pair losses, rewards and TRL metrics against
// float64 references written from LOSSES.md section 2, gradients (finite differences), bfloat16/float16 inputs
// against the float64 reference, reductions, and every bad-input message.
#include <cmath>
#include <limits>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/losses/reference_free.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

namespace F = functional;
using testing::expect_error;
using testing::max_abs_diff;
using testing::to_vector;

double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
double sigmoid_smoothed(double z, double eps) { return -(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z); }
double log1mexp(double x) { return x < -std::log(2.0) ? std::log1p(-std::exp(x)) : std::log(-std::expm1(x)); }

// Summed completion log-probs (tens of nats) and completion lengths (integers in [1, 40]).
struct Batch {
  torch::Tensor pc, pr, lc, lr;
};

Batch random_batch(int64_t n, torch::ScalarType dtype = torch::kDouble, bool grad = false, uint64_t seed = 7) {
  torch::manual_seed(seed);
  Batch b;
  b.lc = torch::randint(1, 41, {n}, torch::kLong);
  b.lr = torch::randint(1, 41, {n}, torch::kLong);
  // About -1.5 nats per token, so mean log-probs stay negative, as ORPO requires.
  b.pc = (-1.5 * b.lc.to(torch::kDouble) + 2 * torch::randn({n}, torch::kDouble)).clamp_max(-0.05);
  b.pr = (-1.7 * b.lr.to(torch::kDouble) + 2 * torch::randn({n}, torch::kDouble)).clamp_max(-0.05);
  b.pc = b.pc.to(dtype).requires_grad_(grad);
  b.pr = b.pr.to(dtype).requires_grad_(grad);
  return b;
}

Eigen::VectorXd lengths_of(const torch::Tensor& t) { return to_vector(t).cwiseMax(1.0); }

// ---------------------------------------------------------------------------------------------------------
// SimPO
// ---------------------------------------------------------------------------------------------------------

Eigen::VectorXd simpo_reference(const Batch& b, double beta, double gamma, double eps) {
  const Eigen::VectorXd pc = to_vector(b.pc), pr = to_vector(b.pr), lc = lengths_of(b.lc), lr = lengths_of(b.lr);
  Eigen::VectorXd out(pc.size());
  for (Eigen::Index i = 0; i < pc.size(); ++i) {
    out(i) = sigmoid_smoothed(beta * (pc(i) / lc(i) - pr(i) / lr(i)) - gamma, eps);
  }
  return out;
}

TEST(SimPOLoss, MatchesReferenceWithOptions) {
  const Batch b = random_batch(16);
  for (double beta : {2.0, 0.5, 10.0}) {
    for (double gamma : {0.5, 0.0, 1.6}) {
      for (double eps : {0.0, 0.2}) {
        const auto out = F::simpo_loss(b.pc, b.pr, b.lc, b.lr,
                                       SimPOLossOptions().beta(beta).gamma(gamma).label_smoothing(eps));
        const Eigen::VectorXd ref = simpo_reference(b, beta, gamma, eps);
        EXPECT_LT(max_abs_diff(ref, out.losses), 1e-12) << beta << " " << gamma << " " << eps;
        EXPECT_NEAR(out.loss.item<double>(), ref.mean(), 1e-12);
      }
    }
  }
}

TEST(SimPOLoss, DefaultsAreThePapers) {
  const SimPOLossOptions options;
  EXPECT_EQ(options.beta(), 2.0);
  EXPECT_EQ(options.gamma(), 0.5);
  EXPECT_EQ(options.label_smoothing(), 0.0);
  const Batch b = random_batch(5);
  EXPECT_LT(max_abs_diff(simpo_reference(b, 2.0, 0.5, 0.0), F::simpo_loss(b.pc, b.pr, b.lc, b.lr).losses), 1e-12);
}

TEST(SimPOLoss, RewardsAndMetricsAreLengthAveraged) {
  const Batch b = random_batch(12);
  const double beta = 2.5;
  const auto out = F::simpo_loss(b.pc, b.pr, b.lc, b.lr, SimPOLossOptions().beta(beta));
  const Eigen::VectorXd mc = to_vector(b.pc).cwiseQuotient(lengths_of(b.lc));
  const Eigen::VectorXd mr = to_vector(b.pr).cwiseQuotient(lengths_of(b.lr));
  EXPECT_LT(max_abs_diff(beta * mc, out.chosen_rewards), 1e-12);
  EXPECT_LT(max_abs_diff(beta * mr, out.rejected_rewards), 1e-12);
  EXPECT_FALSE(out.chosen_rewards.requires_grad());
  double accuracy = 0;
  for (Eigen::Index i = 0; i < mc.size(); ++i) accuracy += mc(i) > mr(i) ? 1.0 : 0.0;
  const auto& m = out.metrics;
  EXPECT_EQ(m.size(), 6u);
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), beta * mc.mean(), 1e-5);
  EXPECT_NEAR(m.at("rewards/rejected").item<double>(), beta * mr.mean(), 1e-5);
  EXPECT_NEAR(m.at("rewards/accuracies").item<double>(), accuracy / 12.0, 1e-6);
  EXPECT_NEAR(m.at("rewards/margins").item<double>(), beta * (mc - mr).mean(), 1e-5);
  EXPECT_NEAR(m.at("logps/chosen").item<double>(), mc.mean(), 1e-5);
  EXPECT_NEAR(m.at("logps/rejected").item<double>(), mr.mean(), 1e-5);
  for (const auto& [name, value] : m) {
    EXPECT_EQ(value.dim(), 0) << name;
    EXPECT_EQ(value.scalar_type(), torch::kFloat) << name;
    EXPECT_FALSE(value.requires_grad()) << name;
  }
}

TEST(SimPOLoss, ZeroLengthsClampToOne) {
  Batch b = random_batch(3);
  b.lc = torch::tensor({0, 1, 5}, torch::kLong);
  const auto out = F::simpo_loss(b.pc, b.pr, b.lc, b.lr);
  EXPECT_LT(max_abs_diff(simpo_reference(b, 2.0, 0.5, 0.0), out.losses), 1e-12);
}

TEST(SimPOLoss, FiniteDifferenceGradcheck) {
  const Batch b = random_batch(5, torch::kDouble, /*grad=*/true);
  for (double eps : {0.0, 0.3}) {
    testing::expect_gradcheck(
        [&](const std::vector<torch::Tensor>& in) {
          return F::simpo_loss(in[0], in[1], b.lc, b.lr,
                               SimPOLossOptions().beta(1.5).label_smoothing(eps).reduction(torch::kNone))
              .losses;
        },
        {b.pc, b.pr});
  }
}

// ---------------------------------------------------------------------------------------------------------
// CPO
// ---------------------------------------------------------------------------------------------------------

struct CPOCase {
  CPOLossType type;
  double beta, eps, cpo_alpha, gamma, alpha;
};

Eigen::VectorXd cpo_reference(const Batch& b, const CPOCase& c, double nll) {
  const bool averaged = c.type == CPOLossType::IPO || c.type == CPOLossType::SimPO;
  Eigen::VectorXd lc = to_vector(b.pc), lr = to_vector(b.pr);
  if (averaged) {
    lc = lc.cwiseQuotient(lengths_of(b.lc));
    lr = lr.cwiseQuotient(lengths_of(b.lr));
  }
  Eigen::VectorXd out(lc.size());
  for (Eigen::Index i = 0; i < lc.size(); ++i) {
    // AlphaPO: r = (1 - p^-alpha) / alpha with p = exp(l).
    const double rc = c.alpha == 0 ? lc(i) : (1 - std::pow(std::exp(lc(i)), -c.alpha)) / c.alpha;
    const double rr = c.alpha == 0 ? lr(i) : (1 - std::pow(std::exp(lr(i)), -c.alpha)) / c.alpha;
    const double z = rc - rr;
    double loss = 0;
    switch (c.type) {
      case CPOLossType::Sigmoid: loss = sigmoid_smoothed(c.beta * z, c.eps); break;
      case CPOLossType::Hinge: loss = std::max(0.0, 1 - c.beta * z); break;
      case CPOLossType::IPO: loss = std::pow(z - 1 / (2 * c.beta), 2); break;
      case CPOLossType::SimPO: loss = sigmoid_smoothed(c.beta * z - c.gamma, c.eps); break;
    }
    out(i) = loss + c.cpo_alpha * nll;
  }
  return out;
}

CPOLossOptions cpo_options(const CPOCase& c) {
  return CPOLossOptions()
      .loss_type(c.type)
      .beta(c.beta)
      .label_smoothing(c.eps)
      .cpo_alpha(c.cpo_alpha)
      .simpo_gamma(c.gamma)
      .alpha(c.alpha);
}

std::vector<CPOCase> cpo_cases() {
  return {
      {kCPOSigmoid, 0.1, 0.0, 1.0, 0.5, 0.0},  {kCPOSigmoid, 0.5, 0.2, 0.0, 0.5, 0.0},
      {kCPOSigmoid, 0.1, 0.0, 1.0, 0.5, 0.05}, {kCPOHinge, 0.1, 0.0, 1.0, 0.5, 0.0},
      {kCPOHinge, 0.3, 0.0, 0.5, 0.5, -0.02},  {kCPOIPO, 0.1, 0.0, 1.0, 0.5, 0.0},
      {kCPOIPO, 1.0, 0.0, 0.0, 0.5, 0.3},      {kCPOSimPO, 2.0, 0.0, 0.0, 0.5, 0.0},
      {kCPOSimPO, 2.5, 0.1, 0.05, 1.2, 0.0},   {kCPOSimPO, 2.0, 0.0, 0.0, 0.5, 0.25},
  };
}

TEST(CPOLoss, EveryLossTypeAndOptionMatchesReference) {
  const Batch b = random_batch(16);
  const torch::Tensor nll = torch::tensor(1.37, torch::kDouble);
  for (const CPOCase& c : cpo_cases()) {
    const auto out = F::cpo_loss(b.pc, b.pr, cpo_options(c),
                                 CPOLossInputs().chosen_lengths(b.lc).rejected_lengths(b.lr).chosen_nll(nll));
    const Eigen::VectorXd ref = cpo_reference(b, c, 1.37);
    EXPECT_LT(max_abs_diff(ref, out.losses), 1e-10) << to_string(c.type) << " alpha " << c.alpha;
    EXPECT_NEAR(out.loss.item<double>(), ref.mean(), 1e-10);
  }
}

TEST(CPOLoss, DefaultsAreTrls) {
  const CPOLossOptions options;
  EXPECT_EQ(options.loss_type(), kCPOSigmoid);
  EXPECT_EQ(options.beta(), 0.1);
  EXPECT_EQ(options.label_smoothing(), 0.0);
  EXPECT_EQ(options.cpo_alpha(), 1.0);
  EXPECT_EQ(options.simpo_gamma(), 0.5);
  EXPECT_EQ(options.alpha(), 0.0);
}

TEST(CPOLoss, SimPOTypeWithoutNLLIsSimPO) {
  const Batch b = random_batch(9);
  const auto cpo = F::cpo_loss(b.pc, b.pr,
                               CPOLossOptions().loss_type(kCPOSimPO).beta(2.0).simpo_gamma(0.7).cpo_alpha(0.0),
                               CPOLossInputs().chosen_lengths(b.lc).rejected_lengths(b.lr));
  const auto simpo = F::simpo_loss(b.pc, b.pr, b.lc, b.lr, SimPOLossOptions().beta(2.0).gamma(0.7));
  EXPECT_LT((cpo.losses - simpo.losses).abs().max().item<double>(), 1e-12);
}

TEST(CPOLoss, RewardsMetricsAndNLL) {
  const Batch b = random_batch(10);
  const double beta = 0.2;
  const torch::Tensor nll = torch::tensor(2.5, torch::kDouble);
  const auto out = F::cpo_loss(b.pc, b.pr, CPOLossOptions().beta(beta), CPOLossInputs().chosen_nll(nll));
  const Eigen::VectorXd pc = to_vector(b.pc), pr = to_vector(b.pr);
  EXPECT_LT(max_abs_diff(beta * pc, out.chosen_rewards), 1e-12);
  EXPECT_LT(max_abs_diff(beta * pr, out.rejected_rewards), 1e-12);
  const auto& m = out.metrics;
  EXPECT_EQ(m.size(), 7u);
  EXPECT_NEAR(m.at("nll_loss").item<double>(), 2.5, 1e-6);
  EXPECT_NEAR(m.at("logps/chosen").item<double>(), pc.mean(), 1e-4);
  EXPECT_NEAR(m.at("rewards/margins").item<double>(), beta * (pc - pr).mean(), 1e-5);
  // The batch mean is TRL's losses.mean() + cpo_alpha * nll_loss.
  const auto plain = F::cpo_loss(b.pc, b.pr, CPOLossOptions().beta(beta).cpo_alpha(0.0));
  EXPECT_NEAR(out.loss.item<double>(), plain.loss.item<double>() + 2.5, 1e-12);
  EXPECT_EQ(plain.metrics.count("nll_loss"), 0u);
}

TEST(CPOLoss, AlphaPORewardsUseTheShapedLogps) {
  const Batch b = random_batch(6);
  const double beta = 2.0, alpha = 0.25;
  const auto out = F::cpo_loss(b.pc, b.pr, CPOLossOptions().loss_type(kCPOSimPO).beta(beta).alpha(alpha).cpo_alpha(0),
                               CPOLossInputs().chosen_lengths(b.lc).rejected_lengths(b.lr));
  const Eigen::VectorXd mc = to_vector(b.pc).cwiseQuotient(lengths_of(b.lc));
  Eigen::VectorXd shaped(mc.size());
  for (Eigen::Index i = 0; i < mc.size(); ++i) shaped(i) = beta * (1 - std::exp(-alpha * mc(i))) / alpha;
  EXPECT_LT(max_abs_diff(shaped, out.chosen_rewards), 1e-12);
  // logps/chosen stays the (length-averaged) log-probs, before AlphaPO.
  EXPECT_NEAR(out.metrics.at("logps/chosen").item<double>(), mc.mean(), 1e-5);
}

TEST(CPOLoss, FiniteDifferenceGradcheckIncludingNLL) {
  const Batch b = random_batch(5, torch::kDouble, /*grad=*/true);
  const torch::Tensor nll = torch::tensor(1.1, torch::dtype(torch::kDouble).requires_grad(true));
  for (const CPOCase& c : cpo_cases()) {
    testing::expect_gradcheck(
        [&](const std::vector<torch::Tensor>& in) {
          return F::cpo_loss(in[0], in[1], cpo_options(c).reduction(torch::kNone),
                             CPOLossInputs().chosen_lengths(b.lc).rejected_lengths(b.lr).chosen_nll(in[2]))
              .losses;
        },
        {b.pc, b.pr, nll});
  }
}

TEST(CPOLoss, LossTypeNames) {
  for (auto t : {kCPOSigmoid, kCPOHinge, kCPOIPO, kCPOSimPO}) EXPECT_EQ(cpo_loss_type_from_string(to_string(t)), t);
  expect_error([] { cpo_loss_type_from_string("alphapo"); },
               "loss_type must be one of: sigmoid, hinge, ipo, simpo; got 'alphapo'");
}

// ---------------------------------------------------------------------------------------------------------
// ORPO
// ---------------------------------------------------------------------------------------------------------

struct ORPOReference {
  Eigen::VectorXd losses, log_odds, mc, mr;
};

ORPOReference orpo_reference(const Batch& b, double beta, double nll) {
  ORPOReference r;
  r.mc = to_vector(b.pc).cwiseQuotient(lengths_of(b.lc));
  r.mr = to_vector(b.pr).cwiseQuotient(lengths_of(b.lr));
  r.losses.resize(r.mc.size());
  r.log_odds.resize(r.mc.size());
  for (Eigen::Index i = 0; i < r.mc.size(); ++i) {
    r.log_odds(i) = (r.mc(i) - r.mr(i)) - (log1mexp(r.mc(i)) - log1mexp(r.mr(i)));
    r.losses(i) = nll - beta * log_sigmoid(r.log_odds(i));
  }
  return r;
}

TEST(ORPOLoss, MatchesReferenceAndTrlMetrics) {
  const Batch b = random_batch(16);
  for (double beta : {0.1, 0.25, 1.0}) {
    const torch::Tensor nll = torch::tensor(1.25, torch::kDouble);
    const auto out = F::orpo_loss(b.pc, b.pr, b.lc, b.lr, nll, ORPOLossOptions().beta(beta));
    const ORPOReference ref = orpo_reference(b, beta, 1.25);
    EXPECT_LT(max_abs_diff(ref.losses, out.losses), 1e-12) << beta;
    EXPECT_NEAR(out.loss.item<double>(), ref.losses.mean(), 1e-12);
    EXPECT_LT(max_abs_diff(beta * ref.mc, out.chosen_rewards), 1e-12);
    EXPECT_LT(max_abs_diff(beta * ref.mr, out.rejected_rewards), 1e-12);
    const auto& m = out.metrics;
    EXPECT_EQ(m.size(), 9u);
    Eigen::VectorXd ratio(ref.log_odds.size());
    for (Eigen::Index i = 0; i < ratio.size(); ++i) ratio(i) = log_sigmoid(ref.log_odds(i));
    EXPECT_NEAR(m.at("log_odds_ratio").item<double>(), ratio.mean(), 1e-6);
    EXPECT_NEAR(m.at("log_odds_chosen").item<double>(), ref.log_odds.mean(), 1e-5);
    EXPECT_NEAR(m.at("nll_loss").item<double>(), 1.25, 1e-6);
    EXPECT_NEAR(m.at("logps/chosen").item<double>(), ref.mc.mean(), 1e-5);
    EXPECT_NEAR(m.at("rewards/margins").item<double>(), beta * (ref.mc - ref.mr).mean(), 1e-5);
  }
}

TEST(ORPOLoss, StableNearZeroAndFarBelow) {
  // Mean log-probs at both sides of -ln 2, near 0 (where log(1 - exp(x)) cancels) and very negative.
  Batch b;
  b.pc = torch::tensor({-1e-7, -0.5, -0.7, -0.69314, -3.0, -60.0}, torch::kFloat);
  b.pr = torch::tensor({-2.0, -1e-4, -0.69316, -0.8, -90.0, -1e-6}, torch::kFloat);
  b.lc = torch::ones({6}, torch::kLong);
  b.lr = torch::ones({6}, torch::kLong);
  const torch::Tensor nll = torch::tensor(0.5f);
  Batch exact{b.pc.to(torch::kDouble), b.pr.to(torch::kDouble), b.lc, b.lr};
  const ORPOReference ref = orpo_reference(exact, 0.1, 0.5);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    const torch::Tensor pc = b.pc.to(dtype).detach().clone().requires_grad_();
    const auto out = F::orpo_loss(pc, b.pr.to(dtype), b.lc, b.lr, nll.to(dtype));
    EXPECT_TRUE(out.losses.isfinite().all().item<bool>());
    EXPECT_LT(max_abs_diff(ref.losses, out.losses), dtype == torch::kFloat ? 2e-6 : 1e-12) << dtype;
    out.loss.backward();
    EXPECT_TRUE(pc.grad().isfinite().all().item<bool>()) << dtype;
  }
}

TEST(ORPOLoss, LowPrecisionLogOddsRunInFloat32) {
  for (auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat}) {
    const Batch low = random_batch(32, dtype);
    const torch::Tensor nll = torch::tensor(1.0).to(dtype);
    const auto out = F::orpo_loss(low.pc, low.pr, low.lc, low.lr, nll);
    EXPECT_EQ(out.losses.scalar_type(), dtype);
    // The reference sees the same rounded inputs; what is left is the computation's error and the final rounding.
    const ORPOReference ref = orpo_reference(low, 0.1, 1.0);
    const double tol = dtype == torch::kFloat ? 1e-6 : (dtype == torch::kHalf ? 2e-3 : 1e-2);
    EXPECT_LT(max_abs_diff(ref.losses, out.losses), tol) << dtype;
  }
}

TEST(ORPOLoss, FiniteDifferenceGradcheck) {
  const Batch b = random_batch(6, torch::kDouble, /*grad=*/true);
  const torch::Tensor nll = torch::tensor(0.9, torch::dtype(torch::kDouble).requires_grad(true));
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        return F::orpo_loss(in[0], in[1], b.lc, b.lr, in[2], ORPOLossOptions().beta(0.3).reduction(torch::kNone))
            .losses;
      },
      {b.pc, b.pr, nll});
  // Both branches of log1mexp (and the switch between them) differentiate correctly.
  const torch::Tensor pc = torch::tensor({-0.05, -0.6, -0.8, -4.0}, torch::dtype(torch::kDouble).requires_grad(true));
  const torch::Tensor pr = torch::tensor({-0.9, -0.01, -2.0, -0.3}, torch::dtype(torch::kDouble).requires_grad(true));
  const torch::Tensor ones = torch::ones({4}, torch::kLong);
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        return F::orpo_loss(in[0], in[1], ones, ones, in[2], ORPOLossOptions().reduction(torch::kNone)).losses;
      },
      {pc, pr, nll});
}

// ---------------------------------------------------------------------------------------------------------
// Shared: low precision, reductions, modules
// ---------------------------------------------------------------------------------------------------------

TEST(ReferenceFreeLosses, LowPrecisionInputsAgainstFloat64Reference) {
  for (auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat}) {
    const Batch low = random_batch(32, dtype);
    const double tol = dtype == torch::kFloat ? 1e-6 : (dtype == torch::kHalf ? 2e-3 : 1e-2);
    const auto simpo = F::simpo_loss(low.pc, low.pr, low.lc, low.lr);
    EXPECT_EQ(simpo.losses.scalar_type(), dtype);
    EXPECT_LT(max_abs_diff(simpo_reference(low, 2.0, 0.5, 0.0), simpo.losses), tol) << dtype;
    const torch::Tensor nll = torch::tensor(1.5).to(dtype);
    for (const CPOCase& c : cpo_cases()) {
      const auto out = F::cpo_loss(low.pc, low.pr, cpo_options(c),
                                   CPOLossInputs().chosen_lengths(low.lc).rejected_lengths(low.lr).chosen_nll(nll));
      EXPECT_EQ(out.losses.scalar_type(), dtype);
      // Relative: ipo's squares and AlphaPO's exponentials reach tens.
      const Eigen::VectorXd ref = cpo_reference(low, c, 1.5);
      EXPECT_LT(max_abs_diff(ref, out.losses), tol * std::max(1.0, ref.cwiseAbs().maxCoeff()))
          << dtype << " " << to_string(c.type);
    }
  }
}

TEST(ReferenceFreeLosses, Reductions) {
  const Batch b = random_batch(6);
  const auto none = F::simpo_loss(b.pc, b.pr, b.lc, b.lr, SimPOLossOptions().reduction(torch::kNone));
  const auto sum = F::simpo_loss(b.pc, b.pr, b.lc, b.lr, SimPOLossOptions().reduction(torch::kSum));
  EXPECT_TRUE(torch::equal(none.loss, none.losses));
  EXPECT_NEAR(sum.loss.item<double>(), none.losses.sum().item<double>(), 1e-12);
  const torch::Tensor nll = torch::tensor(1.0, torch::kDouble);
  const auto cpo_sum = F::cpo_loss(b.pc, b.pr, CPOLossOptions().reduction(torch::kSum), CPOLossInputs().chosen_nll(nll));
  const auto cpo_none = F::cpo_loss(b.pc, b.pr, CPOLossOptions().reduction(torch::kNone), CPOLossInputs().chosen_nll(nll));
  EXPECT_NEAR(cpo_sum.loss.item<double>(), cpo_none.losses.sum().item<double>(), 1e-12);
  const auto orpo_sum = F::orpo_loss(b.pc, b.pr, b.lc, b.lr, nll, ORPOLossOptions().reduction(torch::kSum));
  const auto orpo_none = F::orpo_loss(b.pc, b.pr, b.lc, b.lr, nll, ORPOLossOptions().reduction(torch::kNone));
  EXPECT_NEAR(orpo_sum.loss.item<double>(), orpo_none.losses.sum().item<double>(), 1e-12);
}

TEST(ReferenceFreeLosses, ModulesDelegateToFunctional) {
  const Batch b = random_batch(4);
  const torch::Tensor nll = torch::tensor(0.7, torch::kDouble);
  SimPOLoss simpo(SimPOLossOptions().beta(2.5).gamma(0.3));
  EXPECT_TRUE(torch::equal(simpo(b.pc, b.pr, b.lc, b.lr).losses,
                           F::simpo_loss(b.pc, b.pr, b.lc, b.lr, simpo->options).losses));
  CPOLoss cpo(CPOLossOptions().loss_type(kCPOIPO).beta(0.3));
  const auto inputs = CPOLossInputs().chosen_lengths(b.lc).rejected_lengths(b.lr).chosen_nll(nll);
  EXPECT_TRUE(torch::equal(cpo(b.pc, b.pr, inputs).losses, F::cpo_loss(b.pc, b.pr, cpo->options, inputs).losses));
  ORPOLoss orpo(ORPOLossOptions().beta(0.2));
  EXPECT_TRUE(torch::equal(orpo(b.pc, b.pr, b.lc, b.lr, nll).losses,
                           F::orpo_loss(b.pc, b.pr, b.lc, b.lr, nll, orpo->options).losses));
  std::ostringstream printed;
  printed << *simpo << " " << *cpo << " " << *orpo;
  EXPECT_NE(printed.str().find("prefopt::SimPOLoss(beta=2.5, gamma=0.3"), std::string::npos) << printed.str();
  EXPECT_NE(printed.str().find("prefopt::CPOLoss(loss_type=ipo"), std::string::npos) << printed.str();
  EXPECT_NE(printed.str().find("prefopt::ORPOLoss(beta=0.2)"), std::string::npos) << printed.str();
  auto copy = std::dynamic_pointer_cast<CPOLossImpl>(cpo->clone());
  EXPECT_EQ(copy->options.loss_type(), kCPOIPO);
}

TEST(ReferenceFreeLosses, UncheckedNaNPropagatesInsteadOfVanishing) {
  Batch b = random_batch(3, torch::kFloat);
  b.pc[1] = std::numeric_limits<float>::quiet_NaN();
  const auto simpo = F::simpo_loss(b.pc, b.pr, b.lc, b.lr, SimPOLossOptions().check_finite(false));
  EXPECT_TRUE(std::isnan(simpo.losses[1].item<float>()));
  EXPECT_TRUE(std::isnan(simpo.loss.item<float>()));
  EXPECT_TRUE(std::isfinite(simpo.losses[0].item<float>()));
  const auto orpo = F::orpo_loss(b.pc, b.pr, b.lc, b.lr, torch::tensor(1.0f), ORPOLossOptions().check_finite(false));
  EXPECT_TRUE(std::isnan(orpo.losses[1].item<float>()));
  EXPECT_TRUE(std::isfinite(orpo.losses[2].item<float>()));
}

// ---------------------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------------------

TEST(ReferenceFreeLosses, BadInputGivesClearErrors) {
  const Batch b = random_batch(4, torch::kFloat);
  const torch::Tensor three = torch::randn({3});
  const torch::Tensor nll = torch::tensor(1.0f);
  const auto lengths = CPOLossInputs().chosen_lengths(b.lc).rejected_lengths(b.lr).chosen_nll(nll);

  // Shapes and dtypes.
  expect_error([&] { F::simpo_loss(b.pc, three, b.lc, b.lr); },
               "policy_rejected_logps must have shape [B] matching policy_chosen_logps [4], got [3]");
  expect_error([&] { F::cpo_loss(b.pc, b.pr.to(torch::kDouble), CPOLossOptions(), lengths); },
               "policy_rejected_logps must have the dtype of policy_chosen_logps (Float), got Double");
  expect_error([&] { F::orpo_loss(b.pc.view({2, 2}), b.pr, b.lc, b.lr, nll); },
               "policy_chosen_logps must have shape [B], got [2, 2]");
  expect_error([&] { F::simpo_loss(b.pc.to(torch::kLong), b.pr, b.lc, b.lr); }, "policy_chosen_logps must be floating");
  expect_error([&] { F::simpo_loss(b.pc.slice(0, 0, 0), b.pr.slice(0, 0, 0), b.lc, b.lr); },
               "policy_chosen_logps must hold at least one pair");
  expect_error([&] { F::simpo_loss(b.pc, b.pr, b.lc.slice(0, 0, 3), b.lr); },
               "chosen_lengths must have shape [B] matching policy_chosen_logps [4], got [3]");
  expect_error([&] { F::simpo_loss(b.pc, b.pr, b.lc, b.lr.to(torch::kBool)); },
               "rejected_lengths must be a real or integer tensor of token counts, got Bool");
  expect_error([&] { F::orpo_loss(b.pc, b.pr, b.lc, b.lr, torch::ones({2})); },
               "chosen_nll must be a 0-dim floating tensor, got shape [2]");

  // Missing inputs that a loss type needs.
  expect_error([&] { F::simpo_loss(b.pc, b.pr, torch::Tensor(), b.lr); },
               "chosen_lengths is required by SimPO (completion token counts, [B])");
  expect_error([&] { F::cpo_loss(b.pc, b.pr, CPOLossOptions().loss_type(kCPOIPO), CPOLossInputs().chosen_nll(nll)); },
               "chosen_lengths is required by loss_type ipo");
  expect_error([&] { F::cpo_loss(b.pc, b.pr, CPOLossOptions().loss_type(kCPOSimPO).cpo_alpha(0),
                                 CPOLossInputs().chosen_lengths(b.lc)); },
               "rejected_lengths is required by loss_type simpo");
  expect_error([&] { F::cpo_loss(b.pc, b.pr); }, "chosen_nll is required by cpo_alpha > 0");
  expect_error([&] { F::orpo_loss(b.pc, b.pr, b.lc, b.lr, torch::Tensor()); }, "chosen_nll is required by ORPO");

  // Options.
  for (double beta : {0.0, -1.0, std::nan("")}) {
    expect_error([&] { F::simpo_loss(b.pc, b.pr, b.lc, b.lr, SimPOLossOptions().beta(beta)); }, "beta must be in (0, ");
    expect_error([&] { F::cpo_loss(b.pc, b.pr, CPOLossOptions().beta(beta), lengths); }, "beta must be in (0, ");
    expect_error([&] { F::orpo_loss(b.pc, b.pr, b.lc, b.lr, nll, ORPOLossOptions().beta(beta)); },
                 "beta must be in (0, ");
  }
  expect_error([&] { F::simpo_loss(b.pc, b.pr, b.lc, b.lr, SimPOLossOptions().label_smoothing(0.6)); },
               "label_smoothing must be in [0, 0.5], got 0.6");
  expect_error([&] { F::simpo_loss(b.pc, b.pr, b.lc, b.lr, SimPOLossOptions().gamma(INFINITY)); },
               "gamma must be finite, got inf");
  expect_error([&] { F::cpo_loss(b.pc, b.pr, CPOLossOptions().label_smoothing(-0.1), lengths); },
               "label_smoothing (for loss_type sigmoid) must be in [0, 0.5], got -0.1");
  expect_error([&] { F::cpo_loss(b.pc, b.pr, CPOLossOptions().loss_type(kCPOHinge).label_smoothing(0.1), lengths); },
               "label_smoothing must be 0 for loss_type hinge (only sigmoid and simpo use it), got 0.1");
  expect_error([&] { F::cpo_loss(b.pc, b.pr, CPOLossOptions().cpo_alpha(-1), lengths); },
               "cpo_alpha must be finite and >= 0, got -1");
  expect_error([&] { F::cpo_loss(b.pc, b.pr, CPOLossOptions().alpha(NAN), lengths); }, "alpha must be finite, got nan");

  // Values.
  torch::Tensor nan = b.pc.clone();
  nan[2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { F::simpo_loss(nan, b.pr, b.lc, b.lr); }, "policy_chosen_logps must be finite, got nan at index 2");
  torch::Tensor inf = b.pr.clone();
  inf[1] = -std::numeric_limits<float>::infinity();
  expect_error([&] { F::cpo_loss(b.pc, inf, CPOLossOptions(), lengths); },
               "policy_rejected_logps must be finite, got -inf at index 1");
  expect_error([&] { F::orpo_loss(b.pc, b.pr, b.lc, b.lr, torch::tensor(NAN)); },
               "chosen_nll must be finite, got nan at index 0");
  expect_error([&] { F::simpo_loss(b.pc, b.pr, b.lc, -b.lr); },
               "rejected_lengths must hold finite token counts >= 0, got a negative or non-finite value");
  torch::Tensor positive = b.pr.clone();
  positive[3] = 0.5f;
  expect_error([&] { F::orpo_loss(b.pc, positive, b.lc, torch::ones({4}, torch::kLong), nll); },
               "policy_rejected_logps / rejected_lengths must be <= 0 (a mean token log-prob), got 0.5 at index 3");
}

}  // namespace
}  // namespace prefopt
