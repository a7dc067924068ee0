// Tests of KTO and apo_zero_unpaired (functional::kto_loss and KTOLoss): per-example losses, rewards and TRL
// metrics against a float64 reference written from LOSSES.md section 2, the detached KL baseline, gradients
// (finite differences), bfloat16/float16 inputs, reductions, and every bad-input message.
#include <cmath>
#include <limits>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/losses/unpaired.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

namespace F = functional;
using testing::expect_error;
using testing::max_abs_diff;
using testing::to_vector;

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

struct Batch {
  torch::Tensor p, q, labels, pk, qk;  // policy, reference, desirable?, KL-pair policy, KL-pair reference
};

Batch random_batch(int64_t n, torch::ScalarType dtype = torch::kDouble, bool grad = false, int64_t m = 7) {
  torch::manual_seed(11);
  Batch b;
  b.q = -30 - 10 * torch::rand({n}, torch::kDouble);
  b.p = b.q + 3 * torch::randn({n}, torch::kDouble);
  b.labels = torch::rand({n}).lt(0.6);
  b.qk = -30 - 10 * torch::rand({m}, torch::kDouble);
  b.pk = b.qk + 1.0 + torch::randn({m}, torch::kDouble);  // a positive mean KL on average
  for (torch::Tensor* t : {&b.p, &b.q, &b.pk, &b.qk}) *t = t->to(dtype).requires_grad_(grad);
  return b;
}

std::vector<bool> bools(const torch::Tensor& labels) {
  const torch::Tensor l = labels.to(torch::kLong).contiguous();
  return std::vector<bool>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
}

double reference_z0(const Batch& b) { return std::max(0.0, (to_vector(b.pk) - to_vector(b.qk)).mean()); }

Eigen::VectorXd reference(const Batch& b, KTOLossType type, double beta, double wd, double wu, double z0) {
  const Eigen::VectorXd h = to_vector(b.p) - to_vector(b.q);
  const std::vector<bool> desirable = bools(b.labels);
  Eigen::VectorXd out(h.size());
  for (Eigen::Index i = 0; i < h.size(); ++i) {
    if (type == KTOLossType::KTO) {
      out(i) = desirable[i] ? wd * (1 - sigmoid(beta * (h(i) - z0))) : wu * (1 - sigmoid(beta * (z0 - h(i))));
    } else {
      out(i) = desirable[i] ? wd * (1 - sigmoid(beta * h(i))) : wu * sigmoid(beta * h(i));
    }
  }
  return out;
}

KTOLossInputs kl_inputs(const Batch& b) { return KTOLossInputs().policy_kl_logps(b.pk).ref_kl_logps(b.qk); }

TEST(KTOLoss, MatchesReferenceWithOptions) {
  const Batch b = random_batch(20);
  const double z0 = reference_z0(b);
  ASSERT_GT(z0, 0.0);
  for (double beta : {0.1, 0.5, 2.0}) {
    for (auto [wd, wu] : {std::pair{1.0, 1.0}, std::pair{1.0, 1.33}, std::pair{0.7, 0.0}}) {
      const auto options = KTOLossOptions().beta(beta).desirable_weight(wd).undesirable_weight(wu);
      const auto kto = F::kto_loss(b.p, b.q, b.labels, options, kl_inputs(b));
      const Eigen::VectorXd ref = reference(b, kKTO, beta, wd, wu, z0);
      EXPECT_LT(max_abs_diff(ref, kto.losses), 1e-12) << beta << " " << wd << " " << wu;
      EXPECT_NEAR(kto.loss.item<double>(), ref.mean(), 1e-12);
      const auto apo = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions(options).loss_type(kAPOZeroUnpaired));
      EXPECT_LT(max_abs_diff(reference(b, kAPOZeroUnpaired, beta, wd, wu, 0.0), apo.losses), 1e-12);
    }
  }
}

TEST(KTOLoss, DefaultsAreTrls) {
  const KTOLossOptions options;
  EXPECT_EQ(options.loss_type(), kKTO);
  EXPECT_EQ(options.beta(), 0.1);
  EXPECT_EQ(options.desirable_weight(), 1.0);
  EXPECT_EQ(options.undesirable_weight(), 1.0);
}

TEST(KTOLoss, KLBaselineIsClampedAndDetached) {
  Batch b = random_batch(8, torch::kDouble, /*grad=*/true);
  const auto out = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions(), kl_inputs(b));
  EXPECT_NEAR(out.metrics.at("kl").item<double>(), reference_z0(b), 1e-6);
  const auto grads = torch::autograd::grad({out.loss}, {b.p, b.pk, b.qk}, {}, false, false, /*allow_unused=*/true);
  EXPECT_TRUE(grads[0].defined() && grads[0].abs().sum().item<double>() > 0);
  EXPECT_FALSE(grads[1].defined() && grads[1].abs().sum().item<double>() != 0) << "z0 must be detached";
  EXPECT_FALSE(grads[2].defined() && grads[2].abs().sum().item<double>() != 0) << "z0 must be detached";
  // A negative mean KL gives z0 = 0, the same losses as a precomputed kl of 0.
  const torch::Tensor pk_low = b.qk.detach() - 1.0;
  const auto negative = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions(),
                                    KTOLossInputs().policy_kl_logps(pk_low).ref_kl_logps(b.qk.detach()));
  EXPECT_EQ(negative.metrics.at("kl").item<float>(), 0.0f);
  EXPECT_LT(max_abs_diff(reference(b, kKTO, 0.1, 1, 1, 0.0), negative.losses), 1e-12);
  // A precomputed kl (e.g. all-reduced) is used as max(0, kl).
  const auto given = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions(), KTOLossInputs().kl(torch::tensor(0.8)));
  EXPECT_LT(max_abs_diff(reference(b, kKTO, 0.1, 1, 1, 0.8), given.losses), 1e-6);
  const auto clamped = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions(), KTOLossInputs().kl(torch::tensor(-2.0)));
  EXPECT_LT(max_abs_diff(reference(b, kKTO, 0.1, 1, 1, 0.0), clamped.losses), 1e-12);
}

TEST(KTOLoss, RewardsSubsetsAndTrlMetrics) {
  const Batch b = random_batch(15);
  const double beta = 0.3;
  const auto out = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().beta(beta), kl_inputs(b));
  const Eigen::VectorXd h = to_vector(b.p) - to_vector(b.q), p = to_vector(b.p);
  const std::vector<bool> desirable = bools(b.labels);
  EXPECT_LT(max_abs_diff(beta * h, out.rewards), 1e-12);
  EXPECT_FALSE(out.rewards.requires_grad());
  std::vector<double> chosen, rejected;
  double rc = 0, rr = 0, pc = 0, pr = 0;
  for (Eigen::Index i = 0; i < h.size(); ++i) {
    (desirable[i] ? chosen : rejected).push_back(beta * h(i));
    (desirable[i] ? rc : rr) += beta * h(i);
    (desirable[i] ? pc : pr) += p(i);
  }
  ASSERT_FALSE(chosen.empty());
  ASSERT_FALSE(rejected.empty());
  EXPECT_LT(max_abs_diff(Eigen::Map<Eigen::VectorXd>(chosen.data(), chosen.size()), out.chosen_rewards), 1e-12);
  EXPECT_LT(max_abs_diff(Eigen::Map<Eigen::VectorXd>(rejected.data(), rejected.size()), out.rejected_rewards), 1e-12);
  const double nc = chosen.size(), nr = rejected.size();
  const auto& m = out.metrics;
  EXPECT_EQ(m.size(), 12u);
  EXPECT_EQ(m.at("count/chosen").item<double>(), nc);
  EXPECT_EQ(m.at("count/rejected").item<double>(), nr);
  EXPECT_NEAR(m.at("rewards/chosen_sum").item<double>(), rc, 1e-4);
  EXPECT_NEAR(m.at("rewards/rejected_sum").item<double>(), rr, 1e-4);
  EXPECT_NEAR(m.at("logps/chosen_sum").item<double>(), pc, 1e-3);
  EXPECT_NEAR(m.at("logps/rejected_sum").item<double>(), pr, 1e-3);
  EXPECT_NEAR(m.at("rewards/chosen").item<double>(), rc / nc, 1e-5);
  EXPECT_NEAR(m.at("rewards/rejected").item<double>(), rr / nr, 1e-5);
  EXPECT_NEAR(m.at("rewards/margins").item<double>(), rc / nc - rr / nr, 1e-5);
  EXPECT_NEAR(m.at("logps/chosen").item<double>(), pc / nc, 1e-4);
  EXPECT_NEAR(m.at("logps/rejected").item<double>(), pr / nr, 1e-4);
  EXPECT_NEAR(m.at("kl").item<double>(), reference_z0(b), 1e-6);
  for (const auto& [name, value] : m) {
    EXPECT_EQ(value.dim(), 0) << name;
    EXPECT_EQ(value.scalar_type(), torch::kFloat) << name;
    EXPECT_FALSE(value.requires_grad()) << name;
  }
  const auto apo = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().loss_type(kAPOZeroUnpaired));
  EXPECT_EQ(apo.metrics.at("kl").item<float>(), 0.0f);
}

TEST(KTOLoss, OneSidedBatches) {
  Batch b = random_batch(5);
  b.labels = torch::ones({5}, torch::kBool);
  const auto all_desirable = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions(), kl_inputs(b));
  EXPECT_LT(max_abs_diff(reference(b, kKTO, 0.1, 1, 1, reference_z0(b)), all_desirable.losses), 1e-12);
  EXPECT_EQ(all_desirable.rejected_rewards.numel(), 0);
  EXPECT_EQ(all_desirable.chosen_rewards.numel(), 5);
  // An empty side reports count 0 and zero means, never NaN.
  EXPECT_EQ(all_desirable.metrics.at("count/rejected").item<float>(), 0.0f);
  EXPECT_EQ(all_desirable.metrics.at("rewards/rejected").item<float>(), 0.0f);
  EXPECT_EQ(all_desirable.metrics.at("logps/rejected").item<float>(), 0.0f);
  b.labels = torch::zeros({5}, torch::kBool);
  const auto none_desirable = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions(), kl_inputs(b));
  EXPECT_LT(max_abs_diff(reference(b, kKTO, 0.1, 1, 1, reference_z0(b)), none_desirable.losses), 1e-12);
  EXPECT_EQ(none_desirable.chosen_rewards.numel(), 0);
  EXPECT_EQ(none_desirable.metrics.at("rewards/chosen").item<float>(), 0.0f);
}

TEST(KTOLoss, FiniteDifferenceGradcheck) {
  // Only the policy and reference log-probs: z0 is detached, so its inputs have no gradient by design.
  const Batch b = random_batch(6, torch::kDouble, /*grad=*/true);
  const auto kl = KTOLossInputs().policy_kl_logps(b.pk.detach()).ref_kl_logps(b.qk.detach());
  for (auto type : {kKTO, kAPOZeroUnpaired}) {
    testing::expect_gradcheck(
        [&](const std::vector<torch::Tensor>& in) {
          const auto options =
              KTOLossOptions().loss_type(type).beta(0.5).undesirable_weight(1.5).reduction(torch::kNone);
          return F::kto_loss(in[0], in[1], b.labels, options, type == kKTO ? kl : KTOLossInputs()).losses;
        },
        {b.p, b.q});
  }
}

TEST(KTOLoss, LowPrecisionInputsAgainstFloat64Reference) {
  for (auto dtype : {torch::kBFloat16, torch::kHalf, torch::kFloat}) {
    const Batch low = random_batch(32, dtype);
    const double tol = dtype == torch::kFloat ? 1e-6 : (dtype == torch::kHalf ? 2e-3 : 1e-2);
    const auto out = F::kto_loss(low.p, low.q, low.labels, KTOLossOptions().undesirable_weight(1.2), kl_inputs(low));
    EXPECT_EQ(out.losses.scalar_type(), dtype);
    EXPECT_EQ(out.rewards.scalar_type(), dtype);
    EXPECT_LT(max_abs_diff(reference(low, kKTO, 0.1, 1.0, 1.2, reference_z0(low)), out.losses), tol) << dtype;
  }
}

TEST(KTOLoss, ReductionsAndModule) {
  const Batch b = random_batch(6);
  const auto none = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().reduction(torch::kNone), kl_inputs(b));
  const auto sum = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().reduction(torch::kSum), kl_inputs(b));
  EXPECT_TRUE(torch::equal(none.loss, none.losses));
  EXPECT_NEAR(sum.loss.item<double>(), none.losses.sum().item<double>(), 1e-12);
  KTOLoss module(KTOLossOptions().beta(0.2).undesirable_weight(1.33));
  EXPECT_TRUE(torch::equal(module(b.p, b.q, b.labels, kl_inputs(b)).losses,
                           F::kto_loss(b.p, b.q, b.labels, module->options, kl_inputs(b)).losses));
  std::ostringstream printed;
  printed << *module;
  EXPECT_NE(printed.str().find("prefopt::KTOLoss(loss_type=kto, beta=0.2"), std::string::npos) << printed.str();
  EXPECT_EQ(kto_loss_type_from_string("apo_zero_unpaired"), kAPOZeroUnpaired);
  EXPECT_EQ(to_string(kKTO), "kto");
}

TEST(KTOLoss, UncheckedNaNPropagates) {
  Batch b = random_batch(4, torch::kFloat);
  b.p[1] = std::numeric_limits<float>::quiet_NaN();
  const auto out = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().check_finite(false), kl_inputs(b));
  EXPECT_TRUE(std::isnan(out.losses[1].item<float>()));
  EXPECT_TRUE(out.losses.index({torch::tensor({0, 2, 3})}).isfinite().all().item<bool>());
  EXPECT_TRUE(std::isnan(out.loss.item<float>()));
  // A NaN in the KL pairs reaches every example through z0.
  b = random_batch(4, torch::kFloat);
  b.pk[0] = std::numeric_limits<float>::quiet_NaN();
  const auto all = F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().check_finite(false), kl_inputs(b));
  EXPECT_TRUE(all.losses.isnan().all().item<bool>());
}

TEST(KTOLoss, BadInputGivesClearErrors) {
  const Batch b = random_batch(4, torch::kFloat);
  const torch::Tensor three = torch::randn({3});
  const auto kl = kl_inputs(b);
  expect_error([&] { F::kto_loss(b.p, three, b.labels, {}, kl); },
               "ref_logps must have shape [B] matching policy_logps [4], got [3]");
  expect_error([&] { F::kto_loss(b.p, b.q.to(torch::kDouble), b.labels, {}, kl); },
               "ref_logps must have the dtype of policy_logps (Float), got Double");
  expect_error([&] { F::kto_loss(b.p.slice(0, 0, 0), b.q.slice(0, 0, 0), b.labels.slice(0, 0, 0), {}, kl); },
               "policy_logps must hold at least one pair");
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels.to(torch::kLong), {}, kl); },
               "labels must be a bool tensor (true = desirable), got Long");
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels.slice(0, 0, 2), {}, kl); },
               "labels must have shape [B] matching policy_logps [4], got [2]");
  expect_error([&] { F::kto_loss(b.p, b.q, torch::Tensor(), {}, kl); }, "labels must be a bool tensor of shape [B]");
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels); }, "loss_type kto needs its KL baseline z0");
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, {}, KTOLossInputs().policy_kl_logps(b.pk)); },
               "ref_kl_logps is required with policy_kl_logps");
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, {}, KTOLossInputs(kl).kl(torch::tensor(0.1))); },
               "pass either policy_kl_logps and ref_kl_logps or kl, not both");
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().loss_type(kAPOZeroUnpaired), kl); },
               "loss_type apo_zero_unpaired uses no KL baseline");
  const auto short_ref = KTOLossInputs().policy_kl_logps(b.pk).ref_kl_logps(three);
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, {}, short_ref); },
               "ref_kl_logps must have shape [B] matching policy_kl_logps [7], got [3]");
  const auto wrong_dtype = KTOLossInputs().policy_kl_logps(b.pk.to(torch::kDouble)).ref_kl_logps(b.qk);
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, {}, wrong_dtype); },
               "policy_kl_logps must have the dtype of policy_logps (Float), got Double");
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, {}, KTOLossInputs().kl(torch::ones({2}))); },
               "kl must be a 0-dim floating tensor, got shape [2]");
  for (double beta : {0.0, -0.5, std::nan("")}) {
    expect_error([&] { F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().beta(beta), kl); }, "beta must be in (0, ");
  }
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().desirable_weight(-1), kl); },
               "desirable_weight must be in [0, inf), got -1");
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, KTOLossOptions().undesirable_weight(INFINITY), kl); },
               "undesirable_weight must be in [0, inf), got inf");
  expect_error([] { kto_loss_type_from_string("bco"); }, "loss_type must be one of: kto, apo_zero_unpaired; got 'bco'");
  torch::Tensor nan = b.q.clone();
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { F::kto_loss(b.p, nan, b.labels, {}, kl); }, "ref_logps must be finite, got nan at index 3");
  torch::Tensor inf = b.qk.clone();
  inf[5] = std::numeric_limits<float>::infinity();
  const auto inf_ref = KTOLossInputs().policy_kl_logps(b.pk).ref_kl_logps(inf);
  expect_error([&] { F::kto_loss(b.p, b.q, b.labels, {}, inf_ref); }, "ref_kl_logps must be finite, got inf at index 5");
}

}  // namespace
}  // namespace prefopt
