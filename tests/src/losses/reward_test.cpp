// Tests of the reward-model losses (functional::reward_loss and RewardLoss): Bradley-Terry, margin, scaled,
// label smoothing and reward centring against a float64 reference written from LOSSES.md section 7, TRL's
// RewardTrainer metrics, gradients (finite differences), bfloat16/float16 inputs, and every bad-input message.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/losses/reward.h>
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

struct Batch {
  torch::Tensor rc, rr, margin, magnitude;
};

Batch random_batch(int64_t n, torch::ScalarType dtype = torch::kDouble, bool grad = false) {
  torch::manual_seed(5);
  Batch b;
  b.rc = (0.5 + 2 * torch::randn({n}, torch::kDouble)).to(dtype).requires_grad_(grad);
  b.rr = (2 * torch::randn({n}, torch::kDouble)).to(dtype).requires_grad_(grad);
  b.margin = torch::randint(0, 4, {n}, torch::kDouble).to(dtype);
  b.magnitude = torch::randint(1, 4, {n}, torch::kLong);
  return b;
}

struct Case {
  RewardLossType type;
  double eps, center;
};

Eigen::VectorXd reference(const Batch& b, const Case& c) {
  const Eigen::VectorXd rc = to_vector(b.rc), rr = to_vector(b.rr);
  const Eigen::VectorXd m = to_vector(b.margin), w = to_vector(b.magnitude);
  Eigen::VectorXd out(rc.size());
  for (Eigen::Index i = 0; i < rc.size(); ++i) {
    const double d = rc(i) - rr(i);
    const double z = c.type == RewardLossType::Margin ? d - m(i) : d;
    double loss = -(1 - c.eps) * log_sigmoid(z) - c.eps * log_sigmoid(-z);
    if (c.type == RewardLossType::Scaled) loss *= w(i);
    out(i) = loss + c.center * (rc(i) + rr(i)) * (rc(i) + rr(i));
  }
  return out;
}

RewardLossInputs inputs_for(const Batch& b, RewardLossType type) {
  RewardLossInputs in;
  if (type == RewardLossType::Margin) in.margin(b.margin);
  if (type == RewardLossType::Scaled) in.magnitude(b.magnitude);
  return in;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (auto type : {kBradleyTerry, kMarginBT, kScaledBT}) {
    for (double eps : {0.0, 0.1, 0.5}) {
      for (double center : {0.0, 0.01}) out.push_back({type, eps, center});
    }
  }
  return out;
}

TEST(RewardLoss, EveryLossTypeAndOptionMatchesReference) {
  const Batch b = random_batch(16);
  for (const Case& c : cases()) {
    const auto options =
        RewardLossOptions().loss_type(c.type).label_smoothing(c.eps).center_rewards_coefficient(c.center);
    const auto out = F::reward_loss(b.rc, b.rr, options, inputs_for(b, c.type));
    const Eigen::VectorXd ref = reference(b, c);
    EXPECT_LT(max_abs_diff(ref, out.losses), 1e-12) << to_string(c.type) << " " << c.eps << " " << c.center;
    EXPECT_NEAR(out.loss.item<double>(), ref.mean(), 1e-12);
  }
}

TEST(RewardLoss, Relations) {
  const Batch b = random_batch(8);
  const auto bt = F::reward_loss(b.rc, b.rr);
  // Scaled by ones is plain Bradley-Terry; a zero margin is too.
  const auto ones = F::reward_loss(b.rc, b.rr, RewardLossOptions().loss_type(kScaledBT),
                                   RewardLossInputs().magnitude(torch::ones({8}, torch::kLong)));
  const auto zero = F::reward_loss(b.rc, b.rr, RewardLossOptions().loss_type(kMarginBT),
                                   RewardLossInputs().margin(torch::zeros({8}, torch::kDouble)));
  EXPECT_TRUE(torch::allclose(ones.losses, bt.losses, 0, 1e-15));
  EXPECT_TRUE(torch::allclose(zero.losses, bt.losses, 0, 1e-15));
  // Label smoothing mixes the loss on the label with the loss on the flipped label.
  const auto smooth = F::reward_loss(b.rc, b.rr, RewardLossOptions().label_smoothing(0.2));
  const auto flipped = F::reward_loss(b.rr, b.rc);
  EXPECT_TRUE(torch::allclose(smooth.losses, 0.8 * bt.losses + 0.2 * flipped.losses, 0, 1e-12));
}

TEST(RewardLoss, RewardsAndTrlMetrics) {
  const Batch b = random_batch(12);
  const auto out = F::reward_loss(b.rc, b.rr, RewardLossOptions().loss_type(kMarginBT), inputs_for(b, kMarginBT));
  EXPECT_TRUE(torch::equal(out.chosen_rewards, b.rc));
  EXPECT_TRUE(torch::equal(out.rejected_rewards, b.rr));
  const Eigen::VectorXd rc = to_vector(b.rc), rr = to_vector(b.rr);
  double accuracy = 0;
  for (Eigen::Index i = 0; i < rc.size(); ++i) accuracy += rc(i) > rr(i) ? 1.0 : 0.0;
  const auto& m = out.metrics;
  EXPECT_EQ(m.size(), 5u);
  EXPECT_NEAR(m.at("accuracy").item<double>(), accuracy / 12, 1e-6);
  EXPECT_NEAR(m.at("margin").item<double>(), (rc - rr).mean(), 1e-5);  // without the margin input, as TRL
  EXPECT_NEAR(m.at("min_reward").item<double>(), std::min(rc.minCoeff(), rr.minCoeff()), 1e-5);
  EXPECT_NEAR(m.at("max_reward").item<double>(), std::max(rc.maxCoeff(), rr.maxCoeff()), 1e-5);
  EXPECT_NEAR(m.at("mean_reward").item<double>(), (rc.sum() + rr.sum()) / 24, 1e-5);
  for (const auto& [name, value] : m) {
    EXPECT_EQ(value.dim(), 0) << name;
    EXPECT_EQ(value.scalar_type(), torch::kFloat) << name;
  }
  const torch::Tensor tie = torch::tensor({1.0, 2.0});
  EXPECT_EQ(F::reward_loss(tie, tie).metrics.at("accuracy").item<float>(), 0.0f);
}

TEST(RewardLoss, FiniteDifferenceGradcheck) {
  const Batch b = random_batch(5, torch::kDouble, /*grad=*/true);
  for (const Case& c : cases()) {
    if (c.eps == 0.5) continue;  // the other cases cover every term
    testing::expect_gradcheck(
        [&](const std::vector<torch::Tensor>& in) {
          const auto options = RewardLossOptions()
                                   .loss_type(c.type)
                                   .label_smoothing(c.eps)
                                   .center_rewards_coefficient(c.center)
                                   .reduction(torch::kNone);
          return F::reward_loss(in[0], in[1], options, inputs_for(b, c.type)).losses;
        },
        {b.rc, b.rr});
  }
}

TEST(RewardLoss, LowPrecisionInputsAgainstFloat64Reference) {
  for (auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat}) {
    const Batch low = random_batch(32, dtype);
    const double tol = dtype == torch::kFloat ? 1e-6 : (dtype == torch::kHalf ? 2e-3 : 1e-2);
    for (const Case& c : cases()) {
      const auto options =
          RewardLossOptions().loss_type(c.type).label_smoothing(c.eps).center_rewards_coefficient(c.center);
      const auto out = F::reward_loss(low.rc, low.rr, options, inputs_for(low, c.type));
      EXPECT_EQ(out.losses.scalar_type(), dtype);
      const Eigen::VectorXd ref = reference(low, c);
      EXPECT_LT(max_abs_diff(ref, out.losses), tol * std::max(1.0, ref.cwiseAbs().maxCoeff()))
          << dtype << " " << to_string(c.type);
    }
  }
}

TEST(RewardLoss, ExtremeRewardsStayFinite) {
  const torch::Tensor rc = torch::tensor({1e4f, -1e4f, 0.0f});
  const torch::Tensor rr = torch::tensor({-1e4f, 1e4f, 0.0f});
  const auto out = F::reward_loss(rc, rr, RewardLossOptions().label_smoothing(0.1));
  EXPECT_TRUE(out.losses.isfinite().all().item<bool>());
  EXPECT_NEAR(out.losses[1].item<double>(), 0.9 * 2e4, 1.0);
}

TEST(RewardLoss, ReductionsModuleAndNames) {
  const Batch b = random_batch(6);
  const auto none = F::reward_loss(b.rc, b.rr, RewardLossOptions().reduction(torch::kNone));
  const auto sum = F::reward_loss(b.rc, b.rr, RewardLossOptions().reduction(torch::kSum));
  EXPECT_TRUE(torch::equal(none.loss, none.losses));
  EXPECT_NEAR(sum.loss.item<double>(), none.losses.sum().item<double>(), 1e-12);
  RewardLoss module(RewardLossOptions().loss_type(kScaledBT).label_smoothing(0.05));
  const auto in = inputs_for(b, kScaledBT);
  EXPECT_TRUE(torch::equal(module(b.rc, b.rr, in).losses, F::reward_loss(b.rc, b.rr, module->options, in).losses));
  std::ostringstream printed;
  printed << *module;
  EXPECT_NE(printed.str().find("prefopt::RewardLoss(loss_type=scaled, label_smoothing=0.05"), std::string::npos)
      << printed.str();
  for (auto t : {kBradleyTerry, kMarginBT, kScaledBT}) EXPECT_EQ(reward_loss_type_from_string(to_string(t)), t);
  expect_error([] { reward_loss_type_from_string("bt"); },
               "loss_type must be one of: bradley_terry, margin, scaled; got 'bt'");
}

TEST(RewardLoss, UncheckedNaNPropagates) {
  torch::Tensor rc = torch::randn({3});
  rc[0] = std::numeric_limits<float>::quiet_NaN();
  const auto out = F::reward_loss(rc, torch::randn({3}), RewardLossOptions().check_finite(false));
  EXPECT_TRUE(std::isnan(out.losses[0].item<float>()));
  EXPECT_TRUE(out.losses.slice(0, 1).isfinite().all().item<bool>());
  EXPECT_TRUE(std::isnan(out.loss.item<float>()));
}

TEST(RewardLoss, BadInputGivesClearErrors) {
  const torch::Tensor x = torch::randn({4});
  const torch::Tensor three = torch::randn({3});
  expect_error([&] { F::reward_loss(x, three); }, "rejected_rewards must have shape [B] matching chosen_rewards [4], got [3]");
  expect_error([&] { F::reward_loss(x, x.to(torch::kHalf)); },
               "rejected_rewards must have the dtype of chosen_rewards (Float), got Half");
  expect_error([&] { F::reward_loss(x.view({2, 2}), x.view({2, 2})); }, "chosen_rewards must have shape [B], got [2, 2]");
  expect_error([&] { F::reward_loss(torch::ones({4}, torch::kLong), x); }, "chosen_rewards must be floating");
  expect_error([&] { F::reward_loss(x.slice(0, 0, 0), x.slice(0, 0, 0)); }, "chosen_rewards must hold at least one pair");
  expect_error([&] { F::reward_loss(x, x, RewardLossOptions().loss_type(kMarginBT)); },
               "margin is required by loss_type margin (a [B] tensor, one value per pair)");
  expect_error([&] { F::reward_loss(x, x, RewardLossOptions().loss_type(kScaledBT)); },
               "magnitude is required by loss_type scaled");
  expect_error([&] { F::reward_loss(x, x, RewardLossOptions(), RewardLossInputs().margin(x)); },
               "margin is only used by loss_type margin, got loss_type bradley_terry");
  expect_error([&] {
    F::reward_loss(x, x, RewardLossOptions().loss_type(kMarginBT), RewardLossInputs().margin(x).magnitude(x));
  },
               "magnitude is only used by loss_type scaled, got loss_type margin");
  expect_error([&] { F::reward_loss(x, x, RewardLossOptions().loss_type(kMarginBT), RewardLossInputs().margin(three)); },
               "margin must have shape [B] matching chosen_rewards [4], got [3]");
  expect_error([&] {
    F::reward_loss(x, x, RewardLossOptions().loss_type(kMarginBT), RewardLossInputs().margin(torch::ones({4}, torch::kLong)));
  }, "margin must be floating, got Long");
  expect_error([&] {
    F::reward_loss(x, x, RewardLossOptions().loss_type(kScaledBT), RewardLossInputs().magnitude(torch::ones({4}, torch::kBool)));
  }, "magnitude must be a real or integer tensor, got Bool");
  expect_error([&] {
    F::reward_loss(x, x, RewardLossOptions().loss_type(kScaledBT), RewardLossInputs().magnitude(-torch::ones({4})));
  }, "magnitude must be >= 0, got a negative value");
  expect_error([&] { F::reward_loss(x, x, RewardLossOptions().label_smoothing(0.7)); },
               "label_smoothing must be in [0, 0.5], got 0.7");
  expect_error([&] { F::reward_loss(x, x, RewardLossOptions().center_rewards_coefficient(-0.01)); },
               "center_rewards_coefficient must be finite and >= 0, got -0.01");
  torch::Tensor nan = torch::randn({4});
  nan[2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { F::reward_loss(nan, x); }, "chosen_rewards must be finite, got nan at index 2");
  torch::Tensor inf = torch::randn({4});
  inf[0] = -std::numeric_limits<float>::infinity();
  expect_error([&] { F::reward_loss(x, x, RewardLossOptions().loss_type(kMarginBT), RewardLossInputs().margin(inf)); },
               "margin must be finite, got -inf at index 0");
}

}  // namespace
}  // namespace prefopt
