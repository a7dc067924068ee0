// Tests of the token_entropy operator (through prefopt::token_entropy): forward against a plain float64
// reference written from H = -sum_v p(v) log p(v), p = softmax(logits / T), every CPU instruction set, the
// low-precision rule of DESIGN.md, edge cases (V = 1, V not a multiple of the vector width, ignored rows, -inf
// rows, +-1e4, non-contiguous, empty), no gradient, and bad input. The CUDA test skips without a device.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include "../../kernels/cpu/capability.h"
#include <prefopt/scoring.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"

namespace prefopt {
namespace {

using testing::RowMatrix;
using CpuCapability = kernels::cpu::CpuCapability;

constexpr int64_t kIgnore = -100;
const double kInf = std::numeric_limits<double>::infinity();

Eigen::VectorXd reference_entropy(const RowMatrix& logits, const std::vector<int64_t>& labels, double temperature) {
  Eigen::VectorXd out = Eigen::VectorXd::Zero(logits.rows());
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    if (!labels.empty() && labels[r] == kIgnore) continue;
    const Eigen::VectorXd z = logits.row(r).transpose() / temperature;
    const double m = z.maxCoeff();
    const double lse = m + std::log((z.array() - m).exp().sum());
    double h = 0;
    for (Eigen::Index v = 0; v < z.size(); ++v) {
      const double logp = z(v) - lse;
      const double p = std::exp(logp);
      if (p > 0) h -= p * logp;
    }
    out(r) = h;
  }
  return out;
}

torch::Tensor random_labels(int64_t n, int64_t vocab, int64_t every_ignored = 4) {
  torch::Tensor labels = torch::randint(vocab, {n}, torch::kLong);
  for (int64_t i = 0; i < n; i += every_ignored) labels[i] = kIgnore;
  return labels;
}

TEST(TokenEntropy, Float64MatchesReference) {
  torch::manual_seed(7);
  for (int64_t vocab : {1, 37, 64, 2048, 4099}) {
    for (double t : {1.0, 0.6, 2.0}) {
      const torch::Tensor logits = 3 * torch::randn({9, vocab}, torch::kDouble);
      const torch::Tensor labels = random_labels(9, vocab);
      const torch::Tensor h = token_entropy(logits, labels, kIgnore, t);
      ASSERT_EQ(h.scalar_type(), torch::kDouble);
      EXPECT_LT(testing::max_abs_diff(reference_entropy(testing::to_matrix(logits), testing::to_labels(labels), t), h),
                1e-11)
          << "V=" << vocab << " T=" << t;
    }
  }
}

TEST(TokenEntropy, EveryCpuInstructionSetMatchesReference) {
  torch::manual_seed(13);
  const auto saved = kernels::cpu::cpu_capability();
  for (auto cap : {CpuCapability::kDefault, CpuCapability::kAvx2, CpuCapability::kAvx512}) {
    const auto used = kernels::cpu::set_cpu_capability(cap);
    for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf, torch::kDouble}) {
      for (int64_t vocab : {1, 7, 31, 33, 100, 2049, 5003}) {
        const torch::Tensor logits = (2 * torch::randn({5, vocab})).to(dtype);
        const torch::Tensor h = token_entropy(logits, {}, kIgnore, 1.3);
        const double tol = dtype == torch::kDouble ? 1e-11 : 2e-5 * std::max<double>(1.0, std::log(vocab));
        EXPECT_LT(testing::max_abs_diff(reference_entropy(testing::to_matrix(logits), {}, 1.3), h), tol)
            << kernels::cpu::cpu_capability_name(used) << " " << dtype << " V=" << vocab;
      }
    }
  }
  kernels::cpu::set_cpu_capability(saved);
}

void expect_low_precision_rule(torch::ScalarType dtype, double fixed_tol) {
  torch::manual_seed(11);
  const torch::Tensor logits = (3 * torch::randn({64, 3001}, torch::kDouble)).to(dtype);
  const Eigen::VectorXd expected = reference_entropy(testing::to_matrix(logits), {}, 1.0);
  const torch::Tensor lp = torch::log_softmax(logits, -1);
  const torch::Tensor composite = -(lp.exp() * lp).sum(-1);
  const double fused_err = testing::max_abs_diff(expected, token_entropy(logits));
  const double comp_err = testing::max_abs_diff(expected, composite);
  EXPECT_LE(fused_err, std::max(2 * comp_err, 1e-6)) << "fused " << fused_err << " composite " << comp_err;
  EXPECT_LE(fused_err, fixed_tol);
}

TEST(TokenEntropy, BFloat16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kBFloat16, 1e-4); }
TEST(TokenEntropy, Float16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kHalf, 1e-4); }

TEST(TokenEntropy, IsAMetricWithoutGradient) {
  const torch::Tensor logits = torch::randn({3, 8}).requires_grad_();
  const torch::Tensor h = token_entropy(logits);
  EXPECT_FALSE(h.requires_grad());
  EXPECT_EQ(h.scalar_type(), torch::kFloat);
  EXPECT_EQ(token_entropy(logits.detach().to(torch::kBFloat16)).scalar_type(), torch::kFloat);
}

TEST(TokenEntropy, KnownValues) {
  // Uniform over V: log V. One-hot (the rest -inf): 0. V = 1: 0.
  EXPECT_NEAR(token_entropy(torch::zeros({1, 1000})).item<double>(), std::log(1000.0), 1e-5);
  torch::Tensor one_hot = torch::full({1, 9}, -kInf);
  one_hot[0][4] = 3.0;
  EXPECT_EQ(token_entropy(one_hot).item<double>(), 0.0);
  EXPECT_EQ(token_entropy(torch::randn({4, 1})).abs().max().item<double>(), 0.0);
  torch::Tensor two = torch::full({1, 6}, -kInf, torch::kDouble);
  two[0][1] = 1.0;
  two[0][5] = 1.0;
  EXPECT_NEAR(token_entropy(two).item<double>(), std::log(2.0), 1e-12);
}

TEST(TokenEntropy, AllIgnoredGivesZeros) {
  const torch::Tensor h = token_entropy(torch::randn({4, 9}), torch::full({4}, kIgnore, torch::kLong));
  EXPECT_TRUE(torch::equal(h, torch::zeros({4})));
}

TEST(TokenEntropy, ExtremeLogitsStayFinite) {
  torch::manual_seed(5);
  const torch::Tensor sign = torch::randint(0, 2, {6, 50}, torch::kDouble) * 2 - 1;
  const torch::Tensor logits = (sign * 1e4 + torch::randn({6, 50}, torch::kDouble)).to(torch::kFloat);
  const torch::Tensor h = token_entropy(logits);
  ASSERT_TRUE(h.isfinite().all().item<bool>());
  EXPECT_LT(testing::max_abs_diff(reference_entropy(testing::to_matrix(logits), {}, 1.0), h), 1e-4);
}

TEST(TokenEntropy, NonContiguousAndEmpty) {
  const torch::Tensor base = torch::randn({40, 12}, torch::kDouble);
  const torch::Tensor logits = base.t();
  EXPECT_LT(testing::max_abs_diff(reference_entropy(testing::to_matrix(logits), {}, 1.0), token_entropy(logits)), 1e-12);
  EXPECT_EQ(token_entropy(torch::randn({0, 7})).numel(), 0);
}

using testing::expect_error;

TEST(TokenEntropy, BadInputGivesClearErrors) {
  expect_error([&] { token_entropy(torch::randn({3})); }, "logits must have shape [N, V], got [3]");
  expect_error([&] { token_entropy(torch::randn({3, 5}), torch::zeros({2}, torch::kLong)); },
               "labels must have shape [N] matching logits [3, 5], got [2]");
  expect_error([&] { token_entropy(torch::randn({3, 5}), torch::zeros({3}, torch::kInt)); },
               "labels must be int64, got Int");
  expect_error([&] { token_entropy(torch::randn({2, 0})); }, "logits must have a vocabulary of at least 1");
  expect_error([&] { token_entropy(torch::randn({3, 5}), {}, kIgnore, 0.0); }, "temperature must be finite and > 0");
}

TEST(TokenEntropyCuda, MatchesCpuKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (int64_t vocab : {1, 37, 1000, 5003}) {
      const torch::Tensor logits = (3 * torch::randn({33, vocab})).to(dtype);
      const torch::Tensor labels = random_labels(33, vocab);
      const torch::Tensor cpu = token_entropy(logits, labels);
      const torch::Tensor gpu = token_entropy(logits.cuda(), labels.cuda());
      EXPECT_LT((cpu - gpu.cpu()).abs().max().item<double>(), 1e-4);
    }
  }
}

}  // namespace
}  // namespace prefopt
