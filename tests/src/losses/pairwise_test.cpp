// Tests of the DPO loss (functional::dpo_loss and DPOLoss): per-pair losses, rewards and TRL metrics
// against a float64 reference written from LOSSES.md section 1, gradients, low-precision inputs,
// reductions, and every bad-input message.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/losses/pairwise.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

namespace F = functional;

double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

struct Batch {
  torch::Tensor pc, pr, rc, rr;
};

Batch random_batch(int64_t n, torch::ScalarType dtype = torch::kDouble, bool grad = false) {
  torch::manual_seed(42);
  auto make = [&](double offset) {
    return (offset + 5 * torch::randn({n}, torch::kDouble)).to(dtype).requires_grad_(grad);
  };
  return {make(-40), make(-42), make(-41), make(-41)};
}

// Conservative DPO per pair, from the formula: -(1-eps) logsig(beta D) - eps logsig(-beta D).
Eigen::VectorXd reference_losses(const Batch& b, double beta, double eps, bool reference_free) {
  const Eigen::VectorXd pc = testing::to_vector(b.pc), pr = testing::to_vector(b.pr);
  const Eigen::VectorXd rc = reference_free ? Eigen::VectorXd::Zero(pc.size()) : testing::to_vector(b.rc);
  const Eigen::VectorXd rr = reference_free ? Eigen::VectorXd::Zero(pc.size()) : testing::to_vector(b.rr);
  Eigen::VectorXd out(pc.size());
  for (Eigen::Index i = 0; i < pc.size(); ++i) {
    const double d = beta * ((pc(i) - rc(i)) - (pr(i) - rr(i)));
    out(i) = -(1 - eps) * log_sigmoid(d) - eps * log_sigmoid(-d);
  }
  return out;
}

TEST(DPOLoss, SigmoidMatchesReferenceWithOptions) {
  const Batch b = random_batch(16);
  for (double beta : {0.1, 0.5, 2.0}) {
    for (double eps : {0.0, 0.1, 0.5}) {
      for (bool reference_free : {false, true}) {
        const auto out = F::dpo_loss(
            b.pc, b.pr, b.rc, b.rr,
            DPOLossOptions().beta(beta).label_smoothing(eps).reference_free(reference_free));
        const Eigen::VectorXd ref = reference_losses(b, beta, eps, reference_free);
        EXPECT_LT(testing::max_abs_diff(ref, out.losses), 1e-12) << beta << " " << eps << " " << reference_free;
        EXPECT_NEAR(out.loss.item<double>(), ref.mean(), 1e-12);
      }
    }
  }
}

TEST(DPOLoss, RewardsAndTrlMetrics) {
  const Batch b = random_batch(10);
  const double beta = 0.3;
  const auto out = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, DPOLossOptions().beta(beta));
  const Eigen::VectorXd cr = beta * (testing::to_vector(b.pc) - testing::to_vector(b.rc));
  const Eigen::VectorXd rr = beta * (testing::to_vector(b.pr) - testing::to_vector(b.rr));
  EXPECT_LT(testing::max_abs_diff(cr, out.chosen_rewards), 1e-12);
  EXPECT_LT(testing::max_abs_diff(rr, out.rejected_rewards), 1e-12);
  EXPECT_FALSE(out.chosen_rewards.requires_grad());
  double accuracy = 0;
  for (Eigen::Index i = 0; i < cr.size(); ++i) accuracy += cr(i) > rr(i) ? 1.0 : 0.0;
  accuracy /= static_cast<double>(cr.size());
  const auto& m = out.metrics;
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), cr.mean(), 1e-5);
  EXPECT_NEAR(m.at("rewards/rejected").item<double>(), rr.mean(), 1e-5);
  EXPECT_NEAR(m.at("rewards/accuracies").item<double>(), accuracy, 1e-6);
  EXPECT_NEAR(m.at("rewards/margins").item<double>(), (cr - rr).mean(), 1e-5);
  EXPECT_NEAR(m.at("logps/chosen").item<double>(), testing::to_vector(b.pc).mean(), 1e-4);
  EXPECT_NEAR(m.at("logps/rejected").item<double>(), testing::to_vector(b.pr).mean(), 1e-4);
  EXPECT_EQ(m.size(), 6u);
  for (const auto& [name, value] : m) {
    EXPECT_EQ(value.dim(), 0) << name;
    EXPECT_EQ(value.scalar_type(), torch::kFloat) << name;
  }
}

TEST(DPOLoss, AccuracyIsStrict) {
  const torch::Tensor same = torch::tensor({-3.0, -4.0});
  const auto out = F::dpo_loss(same, same, torch::zeros({2}), torch::zeros({2}));
  EXPECT_EQ(out.metrics.at("rewards/accuracies").item<float>(), 0.0f);
  EXPECT_NEAR(out.loss.item<double>(), std::log(2.0), 1e-6);
}

TEST(DPOLoss, FiniteDifferenceGradcheck) {
  const Batch b = random_batch(5, torch::kDouble, /*grad=*/true);
  for (double eps : {0.0, 0.2}) {
    testing::expect_gradcheck(
        [&](const std::vector<torch::Tensor>& in) {
          return F::dpo_loss(in[0], in[1], in[2], in[3],
                             DPOLossOptions().beta(0.7).label_smoothing(eps).reduction(torch::kNone))
              .losses;
        },
        {b.pc, b.pr, b.rc, b.rr});
  }
}

TEST(DPOLoss, LowPrecisionInputsComputeInFloat32) {
  for (auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat}) {
    const Batch low = random_batch(32, dtype);
    // The reference sees the same rounded inputs; what is left is the computation's own error.
    const Eigen::VectorXd ref = reference_losses(low, 0.1, 0.1, false);
    const auto out = F::dpo_loss(low.pc, low.pr, low.rc, low.rr, DPOLossOptions().label_smoothing(0.1));
    EXPECT_EQ(out.losses.scalar_type(), dtype);
    const double tol = dtype == torch::kFloat ? 1e-6 : (dtype == torch::kHalf ? 2e-3 : 1e-2);
    EXPECT_LT(testing::max_abs_diff(ref, out.losses), tol) << dtype;
  }
}

TEST(DPOLoss, Reductions) {
  const Batch b = random_batch(6);
  const auto none = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, DPOLossOptions().reduction(torch::kNone));
  const auto sum = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, DPOLossOptions().reduction(torch::kSum));
  EXPECT_TRUE(torch::equal(none.loss, none.losses));
  EXPECT_NEAR(sum.loss.item<double>(), none.losses.sum().item<double>(), 1e-12);
}

TEST(DPOLoss, ModuleDelegatesToFunctional) {
  const Batch b = random_batch(4);
  DPOLoss module(DPOLossOptions().loss_type(kSigmoid).beta(0.25).label_smoothing(0.05));
  const auto a = module(b.pc, b.pr, b.rc, b.rr);
  const auto f = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, module->options);
  EXPECT_TRUE(torch::equal(a.losses, f.losses));
  std::ostringstream printed;
  printed << *module;
  EXPECT_NE(printed.str().find("loss_type=sigmoid"), std::string::npos);
}

TEST(DPOLoss, LossTypeNames) {
  EXPECT_EQ(dpo_loss_type_from_string("sigmoid"), kSigmoid);
  EXPECT_EQ(to_string(kSigmoid), "sigmoid");
  EXPECT_EQ(dpo_loss_type_from_string("aot_unpaired"), kAOTUnpaired);
  EXPECT_EQ(to_string(kDiscoPOP), "discopop");
  EXPECT_EQ(f_divergence_from_string("js_divergence"), kJSDivergence);
  testing::expect_error([] { dpo_loss_type_from_string("sigmod"); },
                        "loss_type must be one of: sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, "
                        "sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm, sft; got 'sigmod'");
  testing::expect_error([] { f_divergence_from_string("kl"); },
                        "f_divergence must be one of: reverse_kl, forward_kl, js_divergence, alpha_divergence; got 'kl'");
}

TEST(DPOLoss, BadInputGivesClearErrors) {
  using testing::expect_error;
  const torch::Tensor x = torch::randn({4});
  const torch::Tensor three = torch::randn({3});
  expect_error([&] { F::dpo_loss(x, three, x, x); },
               "policy_rejected_logps must have shape [B] matching policy_chosen_logps [4], got [3]");
  expect_error([&] { F::dpo_loss(x, x, x, three); },
               "ref_rejected_logps must have shape [B] matching policy_chosen_logps [4], got [3]");
  expect_error([&] { F::dpo_loss(x, x.to(torch::kDouble), x, x); },
               "policy_rejected_logps must have the dtype of policy_chosen_logps (Float), got Double");
  expect_error([&] { F::dpo_loss(torch::randn({2, 2}), x, x, x); }, "policy_chosen_logps must have shape [B], got [2, 2]");
  expect_error([&] { F::dpo_loss(torch::ones({4}, torch::kLong), x, x, x); }, "policy_chosen_logps must be floating");
  expect_error([&] { F::dpo_loss(torch::randn({0}), torch::randn({0}), torch::randn({0}), torch::randn({0})); },
               "policy_chosen_logps must hold at least one pair");
  expect_error([&] { F::dpo_loss(x, x, torch::Tensor(), x); }, "ref_chosen_logps must be a tensor of shape [B]");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().beta(0.0)); }, "beta must be in (0, inf), got 0");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().beta(-1.0)); }, "got -1");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().beta(std::nan(""))); }, "beta must be in (0, ");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().label_smoothing(0.6)); },
               "label_smoothing (for loss_type sigmoid) must be in [0, 0.5], got 0.6");
  torch::Tensor nan = torch::randn({4});
  nan[2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { F::dpo_loss(nan, x, x, x); }, "policy_chosen_logps must be finite, got nan at index 2");
  torch::Tensor inf = torch::randn({4});
  inf[1] = -std::numeric_limits<float>::infinity();
  expect_error([&] { F::dpo_loss(x, x, x, inf); }, "ref_rejected_logps must be finite, got -inf at index 1");
}

TEST(DPOLoss, UncheckedNaNPropagatesInsteadOfVanishing) {
  torch::Tensor pc = torch::randn({3});
  pc[0] = std::numeric_limits<float>::quiet_NaN();
  const torch::Tensor x = torch::randn({3});
  const auto out = F::dpo_loss(pc, x, x, x, DPOLossOptions().check_finite(false));
  EXPECT_TRUE(std::isnan(out.losses[0].item<float>()));
  EXPECT_TRUE(out.losses.slice(0, 1).isfinite().all().item<bool>());
  EXPECT_TRUE(std::isnan(out.loss.item<float>()));
}

TEST(DPOLoss, ReferenceFreeAcceptsUndefinedReferences) {
  const Batch b = random_batch(3);
  const auto out = F::dpo_loss(b.pc, b.pr, torch::Tensor(), torch::Tensor(), DPOLossOptions().reference_free(true));
  EXPECT_LT(testing::max_abs_diff(reference_losses(b, 0.1, 0.0, true), out.losses), 1e-12);
}


// ---- The whole family: every loss type and f-divergence against a float64 reference from LOSSES.md ----

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

struct FamilyCase {
  DPOLossType type;
  FDivergence divergence;
  double eps;
};

double phi(double h, FDivergence divergence, double a) {
  switch (divergence) {
    case FDivergence::ReverseKL:
      return h;
    case FDivergence::ForwardKL:
      return -std::exp(std::min(-h, 80.0));
    case FDivergence::JSDivergence:
      return log_sigmoid(h);
    case FDivergence::AlphaDivergence:
      return std::exp(std::min((a - 1) * h, 80.0)) / (a - 1);
  }
  return 0;
}

// Per-pair losses of one loss type, written from LOSSES.md section 1 with plain double arithmetic.
Eigen::VectorXd reference_family(const FamilyCase& c, const Batch& b, const Eigen::VectorXd& lc,
                                 const Eigen::VectorXd& lr, double nll, double beta = 0.2, double a = 0.5,
                                 double tau = 0.05) {
  const Eigen::VectorXd pc = testing::to_vector(b.pc), pr = testing::to_vector(b.pr);
  const Eigen::VectorXd qc = testing::to_vector(b.rc), qr = testing::to_vector(b.rr);
  const Eigen::Index n = pc.size();
  const double e = c.eps;
  auto smoothed = [&](double z) { return -(1 - e) * log_sigmoid(z) - e * log_sigmoid(-z); };
  Eigen::VectorXd d_aot(n);
  if (c.type == DPOLossType::AOT || c.type == DPOLossType::AOTUnpaired) {
    std::vector<double> x(n), y(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      x[i] = c.type == DPOLossType::AOT ? pc(i) - pr(i) : pc(i) - qc(i);
      y[i] = c.type == DPOLossType::AOT ? qc(i) - qr(i) : pr(i) - qr(i);
    }
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    for (Eigen::Index i = 0; i < n; ++i) d_aot(i) = x[i] - y[i];
  }
  Eigen::VectorXd out(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const double hc = pc(i) - qc(i), hr = pr(i) - qr(i);
    const double sc = phi(hc, c.divergence, a), sr = phi(hr, c.divergence, a);
    const double D = sc - sr, z = beta * D;
    switch (c.type) {
      case DPOLossType::Sigmoid: out(i) = smoothed(z); break;
      case DPOLossType::Hinge: out(i) = std::max(0.0, 1 - z); break;
      case DPOLossType::IPO: out(i) = std::pow(sc / lc(i) - sr / lr(i) - 1 / (2 * beta), 2); break;
      case DPOLossType::ExoPair: {
        const double q = sigmoid(z);
        out(i) = q * (log_sigmoid(z) - std::log(1 - e)) + (1 - q) * (log_sigmoid(-z) - std::log(e));
        break;
      }
      case DPOLossType::NCAPair:
        out(i) = -log_sigmoid(beta * sc) - 0.5 * log_sigmoid(-beta * sc) - 0.5 * log_sigmoid(-beta * sr);
        break;
      case DPOLossType::Robust: out(i) = (-(1 - e) * log_sigmoid(z) + e * log_sigmoid(-z)) / (1 - 2 * e); break;
      case DPOLossType::BCOPair: out(i) = -log_sigmoid(beta * sc) - log_sigmoid(-beta * sr); break;
      case DPOLossType::SPPOHard: out(i) = std::pow(sc - 1 / (2 * beta), 2) + std::pow(sr + 1 / (2 * beta), 2); break;
      case DPOLossType::AOT:
      case DPOLossType::AOTUnpaired: out(i) = smoothed(beta * d_aot(i)); break;
      case DPOLossType::APOZero: out(i) = 1 - sigmoid(beta * hc) + sigmoid(beta * hr); break;
      case DPOLossType::APODown: out(i) = sigmoid(beta * hc) + 1 - sigmoid(z); break;
      case DPOLossType::DiscoPOP: {
        const double m = sigmoid(z / tau);
        out(i) = (1 - m) * (-log_sigmoid(z)) + m * std::exp(-z);
        break;
      }
      case DPOLossType::SigmoidNorm: out(i) = -log_sigmoid(beta * (sc / lc(i) - sr / lr(i))); break;
      case DPOLossType::SFT: out(i) = nll; break;
    }
  }
  return out;
}

struct FamilyInputs {
  torch::Tensor lc, lr, nll;
};

FamilyInputs family_inputs(int64_t n, torch::ScalarType dtype = torch::kDouble) {
  torch::manual_seed(5);
  return {torch::randint(1, 30, {n}, torch::kLong), torch::randint(1, 30, {n}, torch::kLong),
          (2.5 + torch::rand({}, torch::kDouble)).to(dtype)};
}

std::vector<FamilyCase> all_family_cases() {
  std::vector<FamilyCase> cases;
  const std::vector<DPOLossType> types = {kSigmoid, kHinge,   kIPO,         kExoPair, kNCAPair,  kRobust,
                                          kBCOPair, kSPPOHard, kAOT,        kAOTUnpaired, kAPOZero, kAPODown,
                                          kDiscoPOP, kSigmoidNorm, kSFT};
  for (auto t : types) {
    const double eps = t == kExoPair ? 0.1 : (t == kSigmoid || t == kRobust || t == kAOT || t == kAOTUnpaired ? 0.2 : 0.0);
    for (auto f : {kReverseKL, kForwardKL, kJSDivergence, kAlphaDivergence}) cases.push_back({t, f, eps});
  }
  return cases;
}

class DPOFamily : public ::testing::TestWithParam<FamilyCase> {};

DPOLossOptions family_options(const FamilyCase& c) {
  return DPOLossOptions().loss_type(c.type).f_divergence(c.divergence).label_smoothing(c.eps).beta(0.2).reduction(
      torch::kNone);
}

// Log-ratios of a few nats, the range the f-divergences are meant for (forward_kl's exp(-h) grows fast).
Batch small_ratio_batch(int64_t n, torch::ScalarType dtype = torch::kDouble, bool grad = false) {
  torch::manual_seed(17);
  const torch::Tensor base = -40 + 5 * torch::randn({n}, torch::kDouble);
  auto make = [&](const torch::Tensor& t) { return t.to(dtype).requires_grad_(grad); };
  return {make(base + torch::randn({n}, torch::kDouble)), make(base - 1 + torch::randn({n}, torch::kDouble)),
          make(base + 0.5 * torch::randn({n}, torch::kDouble)), make(base - 0.5 + 0.5 * torch::randn({n}, torch::kDouble))};
}

TEST_P(DPOFamily, MatchesReferenceInFloat64) {
  const FamilyCase c = GetParam();
  const Batch b = small_ratio_batch(12);
  const FamilyInputs in = family_inputs(12);
  const auto out = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, family_options(c),
                               DPOLossInputs().chosen_lengths(in.lc).rejected_lengths(in.lr).chosen_nll(in.nll));
  const Eigen::VectorXd ref = reference_family(c, b, testing::to_vector(in.lc), testing::to_vector(in.lr),
                                               in.nll.item<double>());
  EXPECT_LT(testing::max_abs_diff(ref, out.losses), 1e-10) << to_string(c.type) << " " << to_string(c.divergence);
  // Rewards are beta * h before the f-divergence, whatever the loss type.
  const Eigen::VectorXd cr = 0.2 * (testing::to_vector(b.pc) - testing::to_vector(b.rc));
  EXPECT_LT(testing::max_abs_diff(cr, out.chosen_rewards), 1e-12);
}

TEST_P(DPOFamily, Gradcheck) {
  const FamilyCase c = GetParam();
  const Batch b = small_ratio_batch(4, torch::kDouble, /*grad=*/true);
  const FamilyInputs in = family_inputs(4);
  torch::Tensor nll = in.nll.clone().requires_grad_();
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& x) {
        return F::dpo_loss(x[0], x[1], x[2], x[3], family_options(c),
                           DPOLossInputs().chosen_lengths(in.lc).rejected_lengths(in.lr).chosen_nll(x[4]))
            .losses;
      },
      {b.pc, b.pr, b.rc, b.rr, nll});
}

TEST_P(DPOFamily, LowPrecisionInputsAgainstFloat64Reference) {
  const FamilyCase c = GetParam();
  for (auto dtype : {torch::kBFloat16, torch::kHalf}) {
    const Batch low = small_ratio_batch(16, dtype);
    const FamilyInputs in = family_inputs(16, dtype);
    const auto out = F::dpo_loss(low.pc, low.pr, low.rc, low.rr, family_options(c),
                                 DPOLossInputs().chosen_lengths(in.lc).rejected_lengths(in.lr).chosen_nll(in.nll));
    ASSERT_EQ(out.losses.scalar_type(), dtype);
    // Same rounded inputs in the reference: what remains is the fp32 arithmetic and the final rounding.
    const Eigen::VectorXd ref = reference_family(c, low, testing::to_vector(in.lc), testing::to_vector(in.lr),
                                                 in.nll.item<double>());
    const double unit = dtype == torch::kBFloat16 ? std::pow(2.0, -8) : std::pow(2.0, -11);
    const Eigen::VectorXd got = testing::to_vector(out.losses);
    for (Eigen::Index i = 0; i < ref.size(); ++i) {
      EXPECT_NEAR(got(i), ref(i), 1e-4 + unit * std::abs(ref(i))) << to_string(c.type) << " " << to_string(c.divergence);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllLossTypes, DPOFamily, ::testing::ValuesIn(all_family_cases()),
                         [](const ::testing::TestParamInfo<FamilyCase>& info) {
                           return to_string(info.param.type) + "_" + to_string(info.param.divergence);
                         });

TEST(DPOLoss, AlphaDivergenceNearOneFallsBackToReverseKL) {
  const Batch b = small_ratio_batch(6);
  const auto near = F::dpo_loss(b.pc, b.pr, b.rc, b.rr,
                                DPOLossOptions().f_divergence(kAlphaDivergence).alpha_divergence_coef(1.0 + 1e-9));
  const auto plain = F::dpo_loss(b.pc, b.pr, b.rc, b.rr);
  EXPECT_TRUE(torch::allclose(near.losses, plain.losses, 0, 0));
}

TEST(DPOLoss, AlphaDivergenceExponentIsClampedNotInfinite) {
  const torch::Tensor pc = torch::tensor({0.0f, 0.0f}), pr = torch::tensor({-500.0f, -1.0f});
  const torch::Tensor ref = torch::zeros({2});
  const auto out = F::dpo_loss(pc, pr, ref, ref, DPOLossOptions().f_divergence(kAlphaDivergence).alpha_divergence_coef(0.5));
  EXPECT_TRUE(out.losses.isfinite().all().item<bool>());
}

TEST(DPOLoss, SeveralLossTypesWithWeights) {
  const Batch b = random_batch(8);
  const FamilyInputs in = family_inputs(8);
  const auto extra = DPOLossInputs().chosen_lengths(in.lc).rejected_lengths(in.lr).chosen_nll(in.nll);
  const auto combo = F::dpo_loss(b.pc, b.pr, b.rc, b.rr,
                                 DPOLossOptions().loss_types({kSigmoid, kIPO, kSFT}).loss_weights({0.8, 0.2, 1.0}),
                                 extra);
  const auto sig = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, DPOLossOptions().loss_type(kSigmoid), extra);
  const auto ipo = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, DPOLossOptions().loss_type(kIPO), extra);
  const auto sft = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, DPOLossOptions().loss_type(kSFT), extra);
  const torch::Tensor expected = 0.8 * sig.losses + 0.2 * ipo.losses + sft.losses;
  EXPECT_TRUE(torch::allclose(combo.losses, expected, 1e-12, 1e-12));
  EXPECT_NEAR(combo.loss.item<double>(), expected.mean().item<double>(), 1e-12);
  EXPECT_TRUE(torch::equal(combo.chosen_rewards, sig.chosen_rewards));
}

TEST(DPOLoss, WpoWeightsAndRpoAlpha) {
  const Batch b = random_batch(6);
  const torch::Tensor wc = -torch::rand({6}, torch::kDouble), wr = -torch::rand({6}, torch::kDouble);
  const torch::Tensor weights = F::wpo_pair_weights(wc, wr);
  const Eigen::VectorXd ref_w = (testing::to_vector(wc) + testing::to_vector(wr)).array().exp().min(1.0);
  EXPECT_LT(testing::max_abs_diff(ref_w, weights), 1e-12);
  const torch::Tensor nll = torch::tensor(1.7, torch::kDouble);
  const auto out = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, DPOLossOptions().rpo_alpha(0.5),
                               DPOLossInputs().weights(weights).chosen_nll(nll));
  const Eigen::VectorXd expected =
      ((reference_losses(b, 0.1, 0.0, false).array() + 0.5 * 1.7) * ref_w.array()).matrix();
  EXPECT_LT(testing::max_abs_diff(expected, out.losses), 1e-12);
  EXPECT_NEAR(out.metrics.at("nll_loss").item<double>(), 1.7, 1e-6);
}

// TRL <= 0.28's RunningMoments: mean of the batch reward means, updated before use, count from 1e-24.
TEST(DPOLoss, BcoRunningMeanIsModuleStateAndCheckpoints) {
  DPOLoss module(DPOLossOptions().loss_type(kBCOPair).bco_running_mean(true).beta(0.3).reduction(torch::kNone));
  double mean = 0.0, count = 1e-24;
  for (int step = 0; step < 3; ++step) {
    torch::manual_seed(100 + step);
    const torch::Tensor pc = -30 + torch::randn({5}, torch::kDouble), pr = -31 + torch::randn({5}, torch::kDouble);
    const torch::Tensor rc = -30 + torch::randn({5}, torch::kDouble), rr = -30 + torch::randn({5}, torch::kDouble);
    const Eigen::VectorXd hc = testing::to_vector(pc - rc), hr = testing::to_vector(pr - rr);
    const double batch_mean = 0.3 * (hc.sum() + hr.sum()) / 10.0;
    count += 1.0;
    mean += (batch_mean - mean) / count;
    Eigen::VectorXd expected(5);
    for (int i = 0; i < 5; ++i) expected(i) = -log_sigmoid(0.3 * hc(i) - mean) - log_sigmoid(-(0.3 * hr(i) - mean));
    const auto out = module(pc, pr, rc, rr);
    EXPECT_LT(testing::max_abs_diff(expected, out.losses), 1e-12) << "step " << step;
  }
  EXPECT_NEAR(module->bco_running_mean.item<double>(), mean, 1e-12);
  const auto buffers = module->named_buffers();
  EXPECT_TRUE(buffers.contains("bco_running_mean"));
  EXPECT_TRUE(buffers.contains("bco_running_count"));
  DPOLoss copy(module->options);
  copy->bco_running_mean.copy_(module->bco_running_mean);
  EXPECT_EQ(std::dynamic_pointer_cast<DPOLossImpl>(module->clone())->bco_running_mean.item<double>(), mean);
}

TEST(DPOLoss, FamilyBadInputGivesClearErrors) {
  using testing::expect_error;
  const torch::Tensor x = torch::randn({4});
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kIPO)); },
               "chosen_lengths is required by loss_type ipo and sigmoid_norm");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kSigmoidNorm),
                                 DPOLossInputs().chosen_lengths(torch::ones({4}))); },
               "rejected_lengths is required by loss_type ipo and sigmoid_norm");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kIPO),
                                 DPOLossInputs().chosen_lengths(torch::ones({3})).rejected_lengths(torch::ones({4}))); },
               "chosen_lengths must have shape [B] matching policy_chosen_logps [4], got [3]");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kIPO),
                                 DPOLossInputs().chosen_lengths(-torch::ones({4})).rejected_lengths(torch::ones({4}))); },
               "chosen_lengths must hold finite token counts >= 0");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kSFT)); },
               "chosen_nll is required by loss_type sft and by rpo_alpha > 0");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().rpo_alpha(1.0)); }, "chosen_nll is required");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kSFT), DPOLossInputs().chosen_nll(torch::ones({2}))); },
               "chosen_nll must be a 0-dim floating tensor, got shape [2]");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kExoPair)); },
               "label_smoothing (for loss_type exo_pair) must be in (0, 1), got 0");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kRobust).label_smoothing(0.5)); },
               "label_smoothing (for loss_type robust) must be in [0, 0.5), got 0.5");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kHinge).label_smoothing(0.1)); },
               "label_smoothing must be 0 for loss_type hinge (only sigmoid, robust, exo_pair, aot and aot_unpaired use it), got 0.1");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kAOT), DPOLossInputs().weights(torch::ones({4}))); },
               "weights (WPO) cannot be combined with loss_type aot or aot_unpaired");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_types({kSigmoid, kHinge}).loss_weights({1.0})); },
               "loss_weights must have one weight per loss type (2), got 1");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kDiscoPOP).discopop_tau(0.0)); },
               "discopop_tau must be in (0, inf), got 0");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().loss_type(kBCOPair).bco_running_mean(true)); },
               "bco_running_mean=true needs state: use the DPOLoss module");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().rpo_alpha(-1.0), DPOLossInputs().chosen_nll(torch::ones({}))); },
               "rpo_alpha must be finite and >= 0, got -1");
  torch::Tensor bad_w = torch::ones({4});
  bad_w[3] = std::numeric_limits<float>::infinity();
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions(), DPOLossInputs().weights(bad_w)); },
               "weights must be finite, got inf at index 3");
}

}  // namespace
}  // namespace prefopt
