// Tests of the DPO loss (functional::dpo_loss and DPOLoss): per-pair losses, rewards and TRL metrics
// against a float64 reference written from LOSSES.md section 1, gradients, low-precision inputs,
// reductions, and every bad-input message.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include "prefopt/losses/pairwise.h"
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
  testing::expect_error([] { dpo_loss_type_from_string("sigmod"); }, "loss_type must be one of: sigmoid; got 'sigmod'");
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
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().beta(0.0)); }, "beta must be in (0, ");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().beta(-1.0)); }, "got -1");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().beta(std::nan(""))); }, "beta must be in (0, ");
  expect_error([&] { F::dpo_loss(x, x, x, x, DPOLossOptions().label_smoothing(0.6)); },
               "label_smoothing must be in [0, 0.5], got 0.6");
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

}  // namespace
}  // namespace prefopt
