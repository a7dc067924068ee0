// Tests of the token_logps operator (through prefopt::token_logps): forward and backward against a plain
// float64 reference written from the formula log p(y) = z_y - log sum_v exp(z_v), z = logits / T,
// finite-difference gradients, the low-precision rule of DESIGN.md, edge cases and bad input.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <prefopt/scoring.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

using testing::RowMatrix;

constexpr int64_t kIgnore = -100;

// log p(label) per row in float64, 0 for ignored rows.
Eigen::VectorXd reference_logps(const RowMatrix& logits, const std::vector<int64_t>& labels, double temperature) {
  Eigen::VectorXd out = Eigen::VectorXd::Zero(logits.rows());
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    if (labels[r] == kIgnore) continue;
    const Eigen::VectorXd z = logits.row(r).transpose() / temperature;
    const double m = z.maxCoeff();
    const double lse = m + std::log((z.array() - m).exp().sum());
    out(r) = z(labels[r]) - lse;
  }
  return out;
}

// d sum_r g_r log p_r / d logits = g_r (onehot - softmax) / T, in float64.
RowMatrix reference_grad(const RowMatrix& logits, const std::vector<int64_t>& labels, const Eigen::VectorXd& g,
                         double temperature) {
  RowMatrix out = RowMatrix::Zero(logits.rows(), logits.cols());
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    if (labels[r] == kIgnore) continue;
    const Eigen::VectorXd z = logits.row(r).transpose() / temperature;
    const double m = z.maxCoeff();
    const Eigen::VectorXd p = (z.array() - m).exp() / (z.array() - m).exp().sum();
    for (Eigen::Index v = 0; v < logits.cols(); ++v) {
      out(r, v) = g(r) * ((v == labels[r] ? 1.0 : 0.0) - p(v)) / temperature;
    }
  }
  return out;
}

torch::Tensor random_labels(int64_t n, int64_t vocab, int64_t every_ignored = 4) {
  torch::Tensor labels = torch::randint(vocab, {n}, torch::kLong);
  for (int64_t i = 0; i < n; i += every_ignored) labels[i] = kIgnore;
  return labels;
}

struct Case {
  int64_t rows;
  int64_t vocab;
  double temperature;
};

class TokenLogpsFloat64 : public ::testing::TestWithParam<Case> {};

TEST_P(TokenLogpsFloat64, ForwardAndBackwardMatchReference) {
  const Case c = GetParam();
  torch::manual_seed(7);
  torch::Tensor logits = (3 * torch::randn({c.rows, c.vocab}, torch::kDouble)).requires_grad_();
  const torch::Tensor labels = random_labels(c.rows, c.vocab);
  const torch::Tensor logps = token_logps(logits, labels, kIgnore, c.temperature);
  ASSERT_EQ(logps.scalar_type(), torch::kDouble);
  const auto lab = testing::to_labels(labels);
  const RowMatrix x = testing::to_matrix(logits);
  EXPECT_LT(testing::max_abs_diff(reference_logps(x, lab, c.temperature), logps), 1e-12);

  const torch::Tensor g = torch::randn({c.rows}, torch::kDouble);
  logps.backward(g);
  const RowMatrix expected = reference_grad(x, lab, testing::to_vector(g), c.temperature);
  EXPECT_LT((expected - testing::to_matrix(logits.grad())).cwiseAbs().maxCoeff(), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TokenLogpsFloat64,
                         ::testing::Values(Case{8, 37, 1.0}, Case{5, 1, 1.0}, Case{6, 64, 0.7}, Case{3, 1000, 2.0},
                                           Case{1, 16, 1.0}));

TEST(TokenLogps, FiniteDifferenceGradcheck) {
  torch::manual_seed(3);
  const torch::Tensor labels = random_labels(6, 13, 3);
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& in) { return token_logps(in[0], labels, kIgnore, 0.8); },
      {torch::randn({6, 13}, torch::kDouble).requires_grad_()});
}

// DESIGN.md's rule: the low-precision kernel's error against float64 is at most twice that of the
// same-dtype ATen composite (log_softmax + gather), and within a fixed tolerance.
void expect_low_precision_rule(torch::ScalarType dtype, double fixed_tol) {
  torch::manual_seed(11);
  const int64_t rows = 64, vocab = 3001;
  const torch::Tensor master = 4 * torch::randn({rows, vocab}, torch::kDouble);
  const torch::Tensor labels = random_labels(rows, vocab);
  const torch::Tensor low = master.to(dtype);
  const auto lab = testing::to_labels(labels);
  // The reference sees the same rounded inputs, so only the computation's error is measured.
  const Eigen::VectorXd ref = reference_logps(testing::to_matrix(low), lab, 1.0);

  const torch::Tensor fused = token_logps(low, labels, kIgnore, 1.0);
  const torch::Tensor mask = labels.ne(kIgnore);
  const torch::Tensor composite = torch::log_softmax(low, -1).gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1) *
                                  mask.to(dtype);
  const double fused_err = testing::max_abs_diff(ref, fused);
  const double composite_err = testing::max_abs_diff(ref, composite);
  EXPECT_LE(fused_err, std::max(2 * composite_err, 1e-6)) << "fused " << fused_err << " composite " << composite_err;
  EXPECT_LE(fused_err, fixed_tol);

  torch::Tensor x = low.clone().requires_grad_();
  const torch::Tensor g = torch::randn({rows}, torch::kDouble);
  token_logps(x, labels, kIgnore, 1.0).backward(g.to(torch::kFloat));
  torch::Tensor y = low.clone().requires_grad_();
  (torch::log_softmax(y, -1).gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1) * mask.to(dtype))
      .backward(g.to(dtype));
  const RowMatrix ref_grad = reference_grad(testing::to_matrix(low), lab, testing::to_vector(g), 1.0);
  const double fused_gerr = (ref_grad - testing::to_matrix(x.grad())).cwiseAbs().maxCoeff();
  const double composite_gerr = (ref_grad - testing::to_matrix(y.grad())).cwiseAbs().maxCoeff();
  EXPECT_LE(fused_gerr, std::max(2 * composite_gerr, 1e-6)) << "fused " << fused_gerr << " composite " << composite_gerr;
}

TEST(TokenLogps, BFloat16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kBFloat16, 1e-4); }
TEST(TokenLogps, Float16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kHalf, 1e-4); }

TEST(TokenLogps, OutputIsFloat32ForHalfInputs) {
  const torch::Tensor labels = torch::zeros({2}, torch::kLong);
  EXPECT_EQ(token_logps(torch::randn({2, 5}).to(torch::kBFloat16), labels).scalar_type(), torch::kFloat);
  EXPECT_EQ(token_logps(torch::randn({2, 5}).to(torch::kHalf), labels).scalar_type(), torch::kFloat);
}

TEST(TokenLogps, AllIgnoredGivesZerosAndZeroGradient) {
  torch::Tensor logits = torch::randn({4, 9}).requires_grad_();
  const torch::Tensor labels = torch::full({4}, kIgnore, torch::kLong);
  const torch::Tensor logps = token_logps(logits, labels);
  EXPECT_TRUE(torch::equal(logps, torch::zeros({4})));
  logps.sum().backward();
  EXPECT_TRUE(torch::equal(logits.grad(), torch::zeros({4, 9})));
}

TEST(TokenLogps, RowOfMinusInfinityExceptOne) {
  const double inf = std::numeric_limits<double>::infinity();
  torch::Tensor logits = torch::full({2, 6}, -inf, torch::kDouble);
  logits[0][2] = 5.0;
  logits[1][4] = -3.0;
  logits.requires_grad_();
  const torch::Tensor labels = torch::tensor({2, 4}, torch::kLong);
  const torch::Tensor logps = token_logps(logits, labels);
  EXPECT_TRUE(torch::equal(logps, torch::zeros({2}, torch::kDouble)));
  logps.sum().backward();
  EXPECT_TRUE(torch::equal(logits.grad(), torch::zeros({2, 6}, torch::kDouble)));
}

TEST(TokenLogps, ExtremeLogitsStayFinite) {
  torch::manual_seed(5);
  torch::Tensor logits = torch::randn({6, 50});
  logits.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, 25)}, 1e4);
  logits.index_put_({torch::indexing::Slice(), torch::indexing::Slice(25)}, -1e4);
  logits.requires_grad_();
  const torch::Tensor labels = torch::tensor({0, 30, 24, 49, 3, 26}, torch::kLong);
  const torch::Tensor logps = token_logps(logits, labels);
  ASSERT_TRUE(logps.isfinite().all().item<bool>());
  const Eigen::VectorXd ref = reference_logps(testing::to_matrix(logits), testing::to_labels(labels), 1.0);
  EXPECT_LT(testing::max_abs_diff(ref, logps), 1e-3);
  logps.sum().backward();
  EXPECT_TRUE(logits.grad().isfinite().all().item<bool>());
}

// Large logits with small differences: subtracting the row max before the log keeps float32's relative precision
// (z - lse would lose |lse| * 2^-24, about 1e-3 here).
TEST(TokenLogps, LargeLogitsKeepFloat32Precision) {
  torch::manual_seed(6);
  const torch::Tensor logits = 1e4 + torch::randn({8, 300});  // exactly representable offset, float32
  const torch::Tensor labels = torch::randint(300, {8}, torch::kLong);
  const torch::Tensor logps = token_logps(logits, labels);
  const Eigen::VectorXd ref = reference_logps(testing::to_matrix(logits), testing::to_labels(labels), 1.0);
  EXPECT_LT(testing::max_abs_diff(ref, logps), 2e-5);
}

TEST(TokenLogps, NonContiguousLogits) {
  torch::manual_seed(9);
  const torch::Tensor base = torch::randn({40, 12}, torch::kDouble);
  const torch::Tensor transposed = base.t();                    // [12, 40], vocabulary stride 12
  const torch::Tensor sliced = base.slice(1, 0, 12, 2).slice(0, 0, 40, 3);  // row and column strides
  for (const torch::Tensor& logits : {transposed, sliced}) {
    const torch::Tensor labels = random_labels(logits.size(0), logits.size(1));
    const Eigen::VectorXd ref = reference_logps(testing::to_matrix(logits), testing::to_labels(labels), 1.0);
    EXPECT_LT(testing::max_abs_diff(ref, token_logps(logits, labels)), 1e-12);
  }
}

TEST(TokenLogps, EmptyRowsGiveEmptyOutput) {
  torch::Tensor logits = torch::randn({0, 7}).requires_grad_();
  const torch::Tensor logps = token_logps(logits, torch::empty({0}, torch::kLong));
  EXPECT_EQ(logps.numel(), 0);
  logps.sum().backward();
  EXPECT_EQ(logits.grad().sizes(), logits.sizes());
}

TEST(TokenLogps, OtherIgnoreIndex) {
  const torch::Tensor logits = torch::randn({3, 5}, torch::kDouble);
  const torch::Tensor labels = torch::tensor({1, 7, 4}, torch::kLong);
  const torch::Tensor logps = token_logps(logits, labels, /*ignore_index=*/7);
  EXPECT_EQ(logps[1].item<double>(), 0.0);
  const Eigen::VectorXd ref = reference_logps(testing::to_matrix(logits), {1, kIgnore, 4}, 1.0);
  EXPECT_LT(testing::max_abs_diff(ref, logps), 1e-12);
}

using testing::expect_error;

TEST(TokenLogps, BadInputGivesClearErrors) {
  const torch::Tensor logits = torch::randn({3, 5});
  expect_error([&] { token_logps(logits, torch::tensor({0, 5, 1}, torch::kLong)); },
               "labels[1] = 5 is out of range: expected a class index in [0, 5) or ignore_index (-100)");
  expect_error([&] { token_logps(logits, torch::tensor({0, -1, 1}, torch::kLong)); }, "labels[1] = -1 is out of range");
  expect_error([&] { token_logps(logits, torch::tensor({0, 1, 1}, torch::kInt)); }, "labels must be int64, got Int");
  expect_error([&] { token_logps(logits, torch::tensor({0, 1}, torch::kLong)); },
               "labels must have shape [N] matching logits [3, 5], got [2]");
  expect_error([&] { token_logps(torch::randn({3}), torch::tensor({0}, torch::kLong)); },
               "logits must have shape [N, V], got [3]");
  expect_error([&] { token_logps(torch::ones({3, 5}, torch::kLong), torch::tensor({0, 1, 1}, torch::kLong)); },
               "logits must be a floating tensor");
  expect_error([&] { token_logps(logits, torch::tensor({0, 1, 1}, torch::kLong), -100, 0.0); },
               "temperature must be finite and > 0, got 0");
  // 1/T overflows float32: refused rather than turned into NaN log-probs.
  expect_error([&] { token_logps(logits, torch::tensor({0, 1, 1}, torch::kLong), -100, 1e-45); },
               "temperature must be at least 3e-39 (1/temperature must be finite in float32), got ");
}

TEST(TokenLogpsCuda, MatchesCpuKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(21);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const torch::Tensor logits = (4 * torch::randn({33, 5003})).to(dtype);
    const torch::Tensor labels = random_labels(33, 5003);
    torch::Tensor cpu_x = logits.clone().requires_grad_();
    torch::Tensor gpu_x = logits.cuda().requires_grad_();
    const torch::Tensor cpu = token_logps(cpu_x, labels);
    const torch::Tensor gpu = token_logps(gpu_x, labels.cuda());
    EXPECT_LT((cpu - gpu.cpu()).abs().max().item<double>(), 1e-4);
    const torch::Tensor g = torch::randn({33});
    cpu.backward(g);
    gpu.backward(g.cuda());
    EXPECT_LT((cpu_x.grad().to(torch::kFloat) - gpu_x.grad().cpu().to(torch::kFloat)).abs().max().item<double>(), 1e-2);
  }
}

}  // namespace
}  // namespace prefopt
