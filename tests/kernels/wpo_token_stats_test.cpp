// Tests of the wpo_token_stats operator (through prefopt::wpo_log_weights / wpo_sequence_log_weights and the
// operator): against a plain float64 reference written from LOSSES.md section 1,
// log w_t = log p(y_t) - log sum_v p(v)^2 with log sum_v p^2 = LSE(2z) - 2 LSE(z); every CPU instruction set, the
// low-precision rule of DESIGN.md, edge cases, detachment and bad input. The CUDA test skips without a device.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include "../../kernels/cpu/capability.h"
#include "../../kernels/wpo_token_stats.h"
#include <prefopt/scoring.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"

namespace prefopt {
namespace {

using testing::RowMatrix;
using CpuCapability = kernels::cpu::CpuCapability;

constexpr int64_t kIgnore = -100;
const double kInf = std::numeric_limits<double>::infinity();

struct Stats {
  Eigen::VectorXd log_weight, logps, lse, lse2;
};

double lse_of(const Eigen::VectorXd& z) {
  const double m = z.maxCoeff();
  return m + std::log((z.array() - m).exp().sum());
}

Stats reference_stats(const RowMatrix& logits, const std::vector<int64_t>& labels, double temperature) {
  const Eigen::Index n = logits.rows();
  Stats s{Eigen::VectorXd::Zero(n), Eigen::VectorXd::Zero(n), Eigen::VectorXd::Zero(n), Eigen::VectorXd::Zero(n)};
  for (Eigen::Index r = 0; r < n; ++r) {
    if (labels[r] == kIgnore) continue;
    const Eigen::VectorXd z = logits.row(r).transpose() / temperature;
    s.lse(r) = lse_of(z);
    s.lse2(r) = lse_of(2 * z);
    s.logps(r) = z(labels[r]) - s.lse(r);
    // log sum_v p_v^2 written directly from the probabilities
    double sum_p2 = 0;
    for (Eigen::Index v = 0; v < z.size(); ++v) sum_p2 += std::exp(2 * (z(v) - s.lse(r)));
    s.log_weight(r) = s.logps(r) - std::log(sum_p2);
  }
  return s;
}

torch::Tensor random_labels(int64_t n, int64_t vocab, int64_t every_ignored = 4) {
  torch::Tensor labels = torch::randint(vocab, {n}, torch::kLong);
  for (int64_t i = 0; i < n; i += every_ignored) labels[i] = kIgnore;
  return labels;
}

TEST(WpoTokenStats, Float64MatchesReference) {
  torch::manual_seed(7);
  for (int64_t vocab : {1, 37, 2048, 4099}) {
    for (double t : {1.0, 0.7}) {
      const torch::Tensor logits = 3 * torch::randn({9, vocab}, torch::kDouble);
      const torch::Tensor labels = random_labels(9, vocab);
      const auto [log_w, logps, lse, lse2] = ops::wpo_token_stats(logits, labels, kIgnore, t);
      const Stats ref = reference_stats(testing::to_matrix(logits), testing::to_labels(labels), t);
      EXPECT_LT(testing::max_abs_diff(ref.log_weight, log_w), 1e-11) << "V=" << vocab;
      EXPECT_LT(testing::max_abs_diff(ref.logps, logps), 1e-11);
      EXPECT_LT(testing::max_abs_diff(ref.lse, lse), 1e-11);
      EXPECT_LT(testing::max_abs_diff(ref.lse2, lse2), 1e-11);
      EXPECT_LT(testing::max_abs_diff(ref.log_weight, wpo_log_weights(logits, labels, kIgnore, t)), 1e-11);
    }
  }
}

TEST(WpoTokenStats, EveryCpuInstructionSetMatchesReference) {
  torch::manual_seed(13);
  const auto saved = kernels::cpu::cpu_capability();
  for (auto cap : {CpuCapability::kDefault, CpuCapability::kAvx2, CpuCapability::kAvx512}) {
    const auto used = kernels::cpu::set_cpu_capability(cap);
    for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf, torch::kDouble}) {
      for (int64_t vocab : {1, 7, 31, 33, 100, 2049, 5003}) {
        const torch::Tensor logits = (2 * torch::randn({5, vocab})).to(dtype);
        const torch::Tensor labels = random_labels(5, vocab, 3);
        const Stats ref = reference_stats(testing::to_matrix(logits), testing::to_labels(labels), 1.0);
        const double tol = dtype == torch::kDouble ? 1e-11 : 2e-5;
        EXPECT_LT(testing::max_abs_diff(ref.log_weight, wpo_log_weights(logits, labels)), tol)
            << kernels::cpu::cpu_capability_name(used) << " " << dtype << " V=" << vocab;
      }
    }
  }
  kernels::cpu::set_cpu_capability(saved);
}

void expect_low_precision_rule(torch::ScalarType dtype, double fixed_tol) {
  torch::manual_seed(11);
  const torch::Tensor logits = (3 * torch::randn({64, 3001}, torch::kDouble)).to(dtype);
  const torch::Tensor labels = random_labels(64, 3001);
  const Stats ref = reference_stats(testing::to_matrix(logits), testing::to_labels(labels), 1.0);
  // The composite a user would write in the logits' dtype.
  const torch::Tensor lse = torch::logsumexp(logits, -1);
  const torch::Tensor logp = torch::log_softmax(logits, -1).gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1);
  const torch::Tensor composite = (logp - (torch::logsumexp(2 * logits, -1) - 2 * lse)) * labels.ne(kIgnore).to(dtype);
  const double fused_err = testing::max_abs_diff(ref.log_weight, wpo_log_weights(logits, labels));
  const double comp_err = testing::max_abs_diff(ref.log_weight, composite);
  EXPECT_LE(fused_err, std::max(2 * comp_err, 1e-6)) << "fused " << fused_err << " composite " << comp_err;
  EXPECT_LE(fused_err, fixed_tol);
}

TEST(WpoTokenStats, BFloat16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kBFloat16, 1e-4); }
TEST(WpoTokenStats, Float16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kHalf, 1e-4); }

TEST(WpoTokenStats, WeightsAreDetachedAndKnownValues) {
  torch::Tensor logits = torch::zeros({2, 8}).requires_grad_();  // uniform: p = 1/8, sum p^2 = 1/8, log w = 0
  const torch::Tensor log_w = wpo_log_weights(logits, torch::tensor({3, 5}, torch::kLong));
  EXPECT_FALSE(log_w.requires_grad());
  EXPECT_LT(log_w.abs().max().item<double>(), 1e-6);
  torch::Tensor one_hot = torch::full({1, 5}, -kInf);  // p(label) = 1 = sum p^2: log w = 0
  one_hot[0][2] = 7.0;
  EXPECT_EQ(wpo_log_weights(one_hot, torch::tensor({2}, torch::kLong)).item<double>(), 0.0);
  EXPECT_EQ(wpo_log_weights(torch::randn({3, 1}), torch::zeros({3}, torch::kLong)).abs().max().item<double>(), 0.0);
}

TEST(WpoSequenceWeights, ExpOfMeanLogWeightOverScoredTokens) {
  torch::manual_seed(17);
  const torch::Tensor logits = torch::randn({2, 5, 11}, torch::kDouble);
  torch::Tensor labels = torch::randint(11, {2, 5}, torch::kLong);
  labels[0][0] = kIgnore;
  labels[0][1] = kIgnore;
  labels[1].fill_(kIgnore);
  const torch::Tensor w = wpo_sequence_log_weights(logits, labels);
  const Stats ref = reference_stats(testing::to_matrix(logits.reshape({10, 11})),
                                    testing::to_labels(labels.reshape({10})), 1.0);
  EXPECT_NEAR(w[0].item<double>(), ref.log_weight.head(5).sum() / 3, 1e-12);
  EXPECT_EQ(w[1].item<double>(), 0.0);  // no scored token
}

TEST(WpoTokenStats, ExtremeLogitsAndNonContiguous) {
  torch::manual_seed(5);
  const torch::Tensor sign = torch::randint(0, 2, {6, 50}, torch::kDouble) * 2 - 1;
  const torch::Tensor logits = (sign * 1e4 + torch::randn({6, 50}, torch::kDouble)).to(torch::kFloat);
  const torch::Tensor labels = torch::randint(50, {6}, torch::kLong);
  const torch::Tensor log_w = wpo_log_weights(logits, labels);
  ASSERT_TRUE(log_w.isfinite().all().item<bool>());
  EXPECT_LT(testing::max_abs_diff(reference_stats(testing::to_matrix(logits), testing::to_labels(labels), 1.0).log_weight,
                                  log_w),
            4e-3);
  const torch::Tensor base = torch::randn({40, 12}, torch::kDouble);
  const torch::Tensor t = base.t();
  const torch::Tensor lab = random_labels(12, 40);
  EXPECT_LT(testing::max_abs_diff(reference_stats(testing::to_matrix(t), testing::to_labels(lab), 1.0).log_weight,
                                  wpo_log_weights(t, lab)),
            1e-12);
  EXPECT_EQ(wpo_log_weights(torch::randn({0, 7}), torch::empty({0}, torch::kLong)).numel(), 0);
  EXPECT_TRUE(torch::equal(wpo_log_weights(torch::randn({3, 7}), torch::full({3}, kIgnore, torch::kLong)),
                           torch::zeros({3})));
}

using testing::expect_error;

TEST(WpoTokenStats, BadInputGivesClearErrors) {
  const torch::Tensor logits = torch::randn({3, 5});
  expect_error([&] { wpo_log_weights(logits, torch::tensor({0, 5, 1}, torch::kLong)); },
               "labels[1] = 5 is out of range: expected a class index in [0, 5) or ignore_index (-100)");
  expect_error([&] { wpo_log_weights(logits, torch::tensor({0, 1}, torch::kLong)); },
               "labels must have shape [N] matching logits [3, 5], got [2]");
  expect_error([&] { wpo_log_weights(logits, torch::tensor({0, 1, 1}, torch::kInt)); }, "labels must be int64, got Int");
  expect_error([&] { wpo_log_weights(torch::randn({3}), torch::tensor({0}, torch::kLong)); },
               "logits must have shape [N, V], got [3]");
  expect_error([&] { wpo_sequence_log_weights(logits, torch::zeros({3}, torch::kLong)); },
               "logits must have shape [B, T, V], got [3, 5]");
}

TEST(WpoTokenStatsCuda, MatchesCpuKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (int64_t vocab : {1, 37, 1000, 5003}) {
      const torch::Tensor logits = (3 * torch::randn({33, vocab})).to(dtype);
      const torch::Tensor labels = random_labels(33, vocab);
      const torch::Tensor cpu = wpo_log_weights(logits, labels);
      const torch::Tensor gpu = wpo_log_weights(logits.cuda(), labels.cuda());
      EXPECT_LT((cpu - gpu.cpu()).abs().max().item<double>(), 1e-4);
    }
  }
}

}  // namespace
}  // namespace prefopt
