// Tests of TDPO (functional::tdpo_loss and TDPOLoss) against a float64 reference written from LOSSES.md
// section 3: both variants, rewards that include the KL, TDPO's metrics, which KL is detached (only the
// chosen one, only in TDPO2), identical policy and reference (zero KL: TDPO is DPO), gradients, bf16 inputs,
// extreme scores and bad input.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/losses/pairwise.h>
#include <prefopt/losses/token_level.h>
#include <prefopt/scoring.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"
#include "support/lists.h"

namespace prefopt {
namespace {

namespace F = functional;
using testing::log_sigmoid_ref;

struct Batch {
  torch::Tensor pc, pr, rc, rr, kc, kr;
  std::vector<torch::Tensor> all() const { return {pc, pr, rc, rr, kc, kr}; }
};

Batch random_batch(int64_t n, torch::ScalarType dtype = torch::kDouble, bool grad = false) {
  torch::manual_seed(17);
  auto logp = [&](double offset) { return (offset + 5 * torch::randn({n}, torch::kDouble)).to(dtype).requires_grad_(grad); };
  auto kl = [&] { return (3 * torch::rand({n}, torch::kDouble)).to(dtype).requires_grad_(grad); };
  return {logp(-40), logp(-42), logp(-41), logp(-41), kl(), kl()};
}

struct Reference {
  Eigen::VectorXd losses, z, chosen_rewards, rejected_rewards;
};

// TDPO1: z = (h_c - h_r) - (K_r - K_c); TDPO2: z = (h_c - h_r) - alpha (K_r - K_c); loss -logsig(beta z);
// rewards beta (h + K).
Reference reference(const Batch& b, TDPOVariant variant, double beta, double alpha) {
  const Eigen::VectorXd pc = testing::to_vector(b.pc), pr = testing::to_vector(b.pr), rc = testing::to_vector(b.rc),
                        rr = testing::to_vector(b.rr), kc = testing::to_vector(b.kc), kr = testing::to_vector(b.kr);
  Reference r;
  const Eigen::Index n = pc.size();
  r.losses.resize(n);
  r.z.resize(n);
  r.chosen_rewards.resize(n);
  r.rejected_rewards.resize(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const double hc = pc(i) - rc(i), hr = pr(i) - rr(i);
    r.z(i) = variant == kTDPO1 ? (hc - hr) - (kr(i) - kc(i)) : (hc - hr) - alpha * (kr(i) - kc(i));
    r.losses(i) = -log_sigmoid_ref(beta * r.z(i));
    r.chosen_rewards(i) = beta * (hc + kc(i));
    r.rejected_rewards(i) = beta * (hr + kr(i));
  }
  return r;
}

TEST(TDPOLoss, BothVariantsMatchTheReference) {
  const Batch b = random_batch(16);
  for (auto variant : {kTDPO1, kTDPO2}) {
    for (double beta : {0.1, 0.5}) {
      for (double alpha : {0.0, 0.5, 2.0}) {
        const auto out = F::tdpo_loss(b.pc, b.pr, b.rc, b.rr, b.kc, b.kr,
                                      TDPOLossOptions().variant(variant).beta(beta).alpha(alpha));
        const Reference ref = reference(b, variant, beta, alpha);
        EXPECT_LT(testing::max_abs_diff(ref.losses, out.losses), 1e-12) << to_string(variant);
        EXPECT_NEAR(out.loss.item<double>(), ref.losses.mean(), 1e-12);
        EXPECT_LT(testing::max_abs_diff(ref.chosen_rewards, out.chosen_rewards), 1e-12);
        EXPECT_LT(testing::max_abs_diff(ref.rejected_rewards, out.rejected_rewards), 1e-12);
        EXPECT_FALSE(out.chosen_rewards.requires_grad());
      }
    }
  }
}

TEST(TDPOLoss, DefaultsAreTdpo2WithBetaPoint1AndAlphaHalf) {
  const Batch b = random_batch(8);
  const auto out = F::tdpo_loss(b.pc, b.pr, b.rc, b.rr, b.kc, b.kr);
  EXPECT_LT(testing::max_abs_diff(reference(b, kTDPO2, 0.1, 0.5).losses, out.losses), 1e-12);
  EXPECT_EQ(TDPOLossOptions().variant(), kTDPO2);
}

TEST(TDPOLoss, Metrics) {
  const Batch b = random_batch(10);
  const auto out = F::tdpo_loss(b.pc, b.pr, b.rc, b.rr, b.kc, b.kr, TDPOLossOptions().beta(0.3));
  const Reference ref = reference(b, kTDPO2, 0.3, 0.5);
  const Eigen::VectorXd kc = testing::to_vector(b.kc), kr = testing::to_vector(b.kr);
  double accuracy = 0;
  for (Eigen::Index i = 0; i < kc.size(); ++i) accuracy += ref.chosen_rewards(i) > ref.rejected_rewards(i);
  accuracy /= static_cast<double>(kc.size());
  const auto& m = out.metrics;
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), ref.chosen_rewards.mean(), 1e-5);
  EXPECT_NEAR(m.at("rewards/rejected").item<double>(), ref.rejected_rewards.mean(), 1e-5);
  EXPECT_NEAR(m.at("rewards/accuracies").item<double>(), accuracy, 1e-6);
  EXPECT_NEAR(m.at("rewards/margins").item<double>(), (ref.chosen_rewards - ref.rejected_rewards).mean(), 1e-5);
  EXPECT_NEAR(m.at("kl/chosen").item<double>(), kc.mean(), 1e-5);
  EXPECT_NEAR(m.at("kl/rejected").item<double>(), kr.mean(), 1e-5);
  EXPECT_NEAR(m.at("kl/margin").item<double>(), (kc - kr).mean(), 1e-5);
  EXPECT_NEAR(m.at("logps/chosen").item<double>(), testing::to_vector(b.pc).mean(), 1e-4);
  EXPECT_NEAR(m.at("logps/rejected").item<double>(), testing::to_vector(b.pr).mean(), 1e-4);
  EXPECT_EQ(m.size(), 9u);
  for (const auto& [name, value] : m) {
    EXPECT_EQ(value.dim(), 0) << name;
    EXPECT_EQ(value.scalar_type(), torch::kFloat) << name;
  }
}

TEST(TDPOLoss, OnlyTheChosenKLIsDetachedAndOnlyInTdpo2) {
  const double beta = 0.4, alpha = 0.7;
  for (auto variant : {kTDPO1, kTDPO2}) {
    const Batch b = random_batch(6, torch::kDouble, /*grad=*/true);
    const auto out = F::tdpo_loss(b.pc, b.pr, b.rc, b.rr, b.kc, b.kr,
                                  TDPOLossOptions().variant(variant).beta(beta).alpha(alpha).reduction(torch::kSum));
    out.loss.backward();
    const Reference ref = reference(b, variant, beta, alpha);
    for (int64_t i = 0; i < 6; ++i) {
      // d(-logsig(beta z))/dz = -beta sigmoid(-beta z).
      const double dz = -beta / (1 + std::exp(beta * ref.z(i)));
      if (variant == kTDPO1) {
        EXPECT_NEAR(b.kc.grad()[i].item<double>(), dz, 1e-12);   // dz/dK_c = +1
        EXPECT_NEAR(b.kr.grad()[i].item<double>(), -dz, 1e-12);  // dz/dK_r = -1
      } else {
        // sg(K_c): no gradient reaches it (only the detached rewards use it otherwise).
        EXPECT_TRUE(!b.kc.grad().defined() || b.kc.grad()[i].item<double>() == 0.0);
        EXPECT_NEAR(b.kr.grad()[i].item<double>(), -alpha * dz, 1e-12);  // dz/dK_r = -alpha
      }
      EXPECT_NEAR(b.pc.grad()[i].item<double>(), dz, 1e-12);
      EXPECT_NEAR(b.rr.grad()[i].item<double>(), dz, 1e-12);
    }
  }
}

TEST(TDPOLoss, IdenticalPolicyAndReferenceGiveZeroKLAndReduceToDPO) {
  // One set of logits for both models: the per-token KL(ref || policy), written here as a plain loop over
  // the vocabulary, is exactly 0, so z is the h-difference alone and TDPO is DPO (here with h = 0: log 2).
  torch::manual_seed(5);
  const int64_t B = 3, T = 4, V = 7;
  const torch::Tensor logits = torch::randn({2 * B, T, V}, torch::kDouble);
  const torch::Tensor labels = torch::randint(0, V, {2 * B, T});
  const torch::Tensor logps = sequence_logps(logits, labels).logps;
  std::vector<double> kl(2 * B, 0.0);
  const auto lg = logits.accessor<double, 3>();
  for (int64_t b = 0; b < 2 * B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      double zmax = -1e300, lse = 0;
      for (int64_t v = 0; v < V; ++v) zmax = std::max(zmax, lg[b][t][v]);
      for (int64_t v = 0; v < V; ++v) lse += std::exp(lg[b][t][v] - zmax);
      lse = zmax + std::log(lse);
      for (int64_t v = 0; v < V; ++v) {
        const double log_ref = lg[b][t][v] - lse, log_pol = lg[b][t][v] - lse;
        kl[b] += std::exp(log_ref) * (log_ref - log_pol);
      }
    }
  }
  const torch::Tensor k = torch::tensor(kl, torch::kDouble);
  EXPECT_EQ(k.abs().max().item<double>(), 0.0);
  const torch::Tensor pc = logps.slice(0, 0, B), pr = logps.slice(0, B);
  for (auto variant : {kTDPO1, kTDPO2}) {
    const auto out = F::tdpo_loss(pc, pr, pc, pr, k.slice(0, 0, B), k.slice(0, B), TDPOLossOptions().variant(variant));
    EXPECT_NEAR(out.loss.item<double>(), std::log(2.0), 1e-12);
    EXPECT_EQ(out.metrics.at("kl/chosen").item<float>(), 0.0f);
    EXPECT_EQ(out.metrics.at("kl/rejected").item<float>(), 0.0f);
  }
  // Zero KL with any log-ratios: z = h_c - h_r, the DPO margin.
  const Batch b = random_batch(8);
  const torch::Tensor zero = torch::zeros({8}, torch::kDouble);
  const auto tdpo = F::tdpo_loss(b.pc, b.pr, b.rc, b.rr, zero, zero, TDPOLossOptions().variant(kTDPO1).beta(0.2));
  const auto dpo = F::dpo_loss(b.pc, b.pr, b.rc, b.rr, DPOLossOptions().beta(0.2));
  EXPECT_LT((tdpo.losses - dpo.losses).abs().max().item<double>(), 1e-12);
}

TEST(TDPOLoss, FiniteDifferenceGradcheck) {
  const Batch b = random_batch(5, torch::kDouble, /*grad=*/true);
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        return F::tdpo_loss(in[0], in[1], in[2], in[3], in[4], in[5],
                            TDPOLossOptions().variant(kTDPO1).beta(0.5).reduction(torch::kNone))
            .losses;
      },
      b.all());
  // TDPO2: the chosen KL is detached by design, so it is held fixed here (its gradient is checked above).
  const torch::Tensor kc = b.kc.detach();
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        return F::tdpo_loss(in[0], in[1], in[2], in[3], kc, in[4],
                            TDPOLossOptions().variant(kTDPO2).beta(0.5).alpha(0.3).reduction(torch::kNone))
            .losses;
      },
      {b.pc, b.pr, b.rc, b.rr, b.kr});
}

TEST(TDPOLoss, LowPrecisionInputs) {
  for (auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat}) {
    const Batch low = random_batch(32, dtype);
    const Reference ref = reference(low, kTDPO2, 0.1, 0.5);  // the same rounded inputs, in float64
    const auto out = F::tdpo_loss(low.pc, low.pr, low.rc, low.rr, low.kc, low.kr);
    EXPECT_EQ(out.losses.scalar_type(), dtype);
    EXPECT_EQ(out.chosen_rewards.scalar_type(), dtype);
    const double tol = dtype == torch::kFloat ? 1e-6 : (dtype == torch::kHalf ? 2e-3 : 1e-2);
    EXPECT_LT(testing::max_abs_diff(ref.losses, out.losses), tol) << dtype;
  }
}

TEST(TDPOLoss, ExtremeScoresStayFinite) {
  const torch::Tensor big = torch::tensor({1e4, -1e4, 0.0}), zero = torch::zeros({3});
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const torch::Tensor pc = big.to(dtype).detach().clone().requires_grad_();
    const auto out = F::tdpo_loss(pc, -big.to(dtype), zero.to(dtype), zero.to(dtype), big.abs().to(dtype),
                                  zero.to(dtype), TDPOLossOptions().beta(1.0).variant(kTDPO1));
    EXPECT_TRUE(out.losses.isfinite().all().item<bool>());
    out.loss.backward();
    EXPECT_TRUE(pc.grad().isfinite().all().item<bool>());
  }
}

TEST(TDPOLoss, ModuleAndNames) {
  const Batch b = random_batch(4);
  TDPOLoss module(TDPOLossOptions().variant(kTDPO1).beta(0.2));
  EXPECT_TRUE(torch::equal(module(b.pc, b.pr, b.rc, b.rr, b.kc, b.kr).losses,
                           F::tdpo_loss(b.pc, b.pr, b.rc, b.rr, b.kc, b.kr, module->options).losses));
  std::ostringstream printed;
  printed << *module;
  EXPECT_NE(printed.str().find("variant=tdpo1"), std::string::npos);
  EXPECT_EQ(tdpo_variant_from_string("tdpo2"), kTDPO2);
  testing::expect_error([] { tdpo_variant_from_string("tdpo3"); }, "variant must be one of: tdpo1, tdpo2; got 'tdpo3'");
}

TEST(TDPOLoss, BadInputGivesClearErrors) {
  using testing::expect_error;
  const torch::Tensor x = torch::randn({4});
  expect_error([&] { F::tdpo_loss(x, x, x, x, torch::randn({3}), x); },
               "chosen_kl must have shape [B] matching policy_chosen_logps [4], got [3]");
  expect_error([&] { F::tdpo_loss(x, x, x, x, x, x.to(torch::kDouble)); },
               "rejected_kl must have the dtype of policy_chosen_logps (Float), got Double");
  expect_error([&] { F::tdpo_loss(x, x, x, x, torch::Tensor(), x); }, "chosen_kl must be a tensor of shape [B]");
  expect_error([&] { F::tdpo_loss(x, x, x, x, x, x, TDPOLossOptions().alpha(-1)); }, "alpha must be in [0, ");
  expect_error([&] { F::tdpo_loss(x, x, x, x, x, x, TDPOLossOptions().beta(0)); }, "beta must be in (0, ");
  torch::Tensor nan = torch::rand({4});
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { F::tdpo_loss(x, x, x, x, x, nan); }, "rejected_kl must be finite, got nan at index 3");
  expect_error([&] { F::tdpo_loss(torch::randn({0}), torch::randn({0}), torch::randn({0}), torch::randn({0}),
                                  torch::randn({0}), torch::randn({0})); },
               "policy_chosen_logps must hold at least one pair");
}

}  // namespace
}  // namespace prefopt
