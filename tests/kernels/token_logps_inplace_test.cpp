// Tests of the vectorised token_logps CPU kernel under every instruction set the library was built with, and of
// its in-place backward (TokenLogpsOptions::inplace_backward, SequenceLogpsOptions::inplace_backward and the
// _token_logps_backward_inplace operator, including vocabulary slices with a label offset, as the fused-linear
// path uses). References are plain float64 loops over log p(y) = z_y - log sum_v exp(z_v), z = logits / T.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include "../../kernels/cpu/capability.h"
#include "../../kernels/token_logps.h"
#include <prefopt/scoring.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"

namespace prefopt {
namespace {

using testing::RowMatrix;
using CpuCapability = kernels::cpu::CpuCapability;

constexpr int64_t kIgnore = -100;

Eigen::VectorXd reference_logps(const RowMatrix& logits, const std::vector<int64_t>& labels, double temperature) {
  Eigen::VectorXd out = Eigen::VectorXd::Zero(logits.rows());
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    if (labels[r] == kIgnore) continue;
    const Eigen::VectorXd z = logits.row(r).transpose() / temperature;
    const double m = z.maxCoeff();
    out(r) = z(labels[r]) - (m + std::log((z.array() - m).exp().sum()));
  }
  return out;
}

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

TEST(TokenLogpsCpu, EveryInstructionSetMatchesReference) {
  torch::manual_seed(13);
  const auto saved = kernels::cpu::cpu_capability();
  for (auto cap : {CpuCapability::kDefault, CpuCapability::kAvx2, CpuCapability::kAvx512}) {
    const auto used = kernels::cpu::set_cpu_capability(cap);
    for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf, torch::kDouble}) {
      // Vector widths are 8/16 (fp32) and 16/32 elements per step; blocks are 2048: cover tails and merges.
      for (int64_t vocab : {1, 7, 15, 16, 17, 31, 33, 100, 2047, 2049, 5003}) {
        const torch::Tensor logits = (3 * torch::randn({6, vocab})).to(dtype);
        const torch::Tensor labels = random_labels(6, vocab, 3);
        const auto lab = testing::to_labels(labels);
        torch::Tensor x = logits.clone().requires_grad_();
        const torch::Tensor logps = token_logps(x, labels, kIgnore, 0.8);
        const double tol = dtype == torch::kDouble ? 1e-11 : 2e-5;
        EXPECT_LT(testing::max_abs_diff(reference_logps(testing::to_matrix(logits), lab, 0.8), logps), tol)
            << kernels::cpu::cpu_capability_name(used) << " " << dtype << " V=" << vocab;
        const torch::Tensor g = torch::randn({6});
        logps.backward(g.to(logps.scalar_type()));
        const RowMatrix expected = reference_grad(testing::to_matrix(logits), lab, testing::to_vector(g), 0.8);
        const double gtol = dtype == torch::kDouble ? 1e-12 : (dtype == torch::kFloat ? 2e-6 : 2e-2);
        EXPECT_LT((expected - testing::to_matrix(x.grad())).cwiseAbs().maxCoeff(), gtol)
            << kernels::cpu::cpu_capability_name(used) << " " << dtype << " V=" << vocab;
      }
    }
  }
  kernels::cpu::set_cpu_capability(saved);
}

TEST(TokenLogpsCpu, CapabilityNamesAndClamp) {
  const auto best = kernels::cpu::max_cpu_capability();
  const auto saved = kernels::cpu::cpu_capability();
  EXPECT_EQ(kernels::cpu::set_cpu_capability(CpuCapability::kAvx512), best);
  EXPECT_EQ(kernels::cpu::set_cpu_capability(CpuCapability::kDefault), CpuCapability::kDefault);
  EXPECT_EQ(kernels::cpu::cpu_capability_name(CpuCapability::kAvx2), "avx2");
  kernels::cpu::set_cpu_capability(saved);
}

TEST(TokenLogpsInplace, GradientMatchesAndOverwritesLogits) {
  torch::manual_seed(3);
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kDouble}) {
    const torch::Tensor base = torch::randn({12, 301}, torch::kDouble).to(dtype);
    const torch::Tensor labels = random_labels(12, 301);
    const torch::Tensor g = torch::randn({12}).to(dtype == torch::kDouble ? torch::kDouble : torch::kFloat);

    torch::Tensor leaf_a = base.clone().requires_grad_();
    torch::Tensor logits_a = leaf_a * 2;  // an intermediate tensor, as a model's logits are
    token_logps(logits_a, labels, TokenLogpsOptions()).backward(g);

    torch::Tensor leaf_b = base.clone().requires_grad_();
    torch::Tensor logits_b = leaf_b * 2;
    const void* buffer = logits_b.data_ptr();
    torch::Tensor grad_seen;
    logits_b.register_hook([&](const torch::Tensor& grad) { grad_seen = grad; });
    token_logps(logits_b, labels, TokenLogpsOptions().inplace_backward(true)).backward(g);
    EXPECT_TRUE(torch::equal(leaf_a.grad(), leaf_b.grad())) << dtype;
    ASSERT_TRUE(grad_seen.defined());
    EXPECT_EQ(grad_seen.data_ptr(), buffer) << "the gradient must live in the logits' buffer";
  }
}

TEST(TokenLogpsInplace, LeafLogitsFallBackToOutOfPlace) {
  torch::Tensor logits = torch::randn({4, 9}).requires_grad_();
  const torch::Tensor before = logits.detach().clone();
  token_logps(logits, torch::tensor({1, 2, 3, 4}, torch::kLong), TokenLogpsOptions().inplace_backward(true))
      .sum()
      .backward();
  EXPECT_TRUE(torch::equal(logits.detach(), before));
  EXPECT_NE(logits.grad().data_ptr(), logits.data_ptr());
}

TEST(TokenLogpsInplace, SequenceLogpsOption) {
  torch::manual_seed(4);
  const torch::Tensor base = torch::randn({2, 5, 33});
  torch::Tensor labels = torch::randint(33, {2, 5}, torch::kLong);
  labels[0][0] = kIgnore;
  torch::Tensor a = base.clone().requires_grad_(), b = base.clone().requires_grad_();
  sequence_logps(a * 1, labels).logps.sum().backward();
  sequence_logps(b * 1, labels, SequenceLogpsOptions().inplace_backward(true)).logps.sum().backward();
  EXPECT_TRUE(torch::equal(a.grad(), b.grad()));
}

TEST(TokenLogpsInplace, VocabularySlicesWithLabelOffset) {
  torch::manual_seed(5);
  const int64_t n = 7, vocab = 50;
  const torch::Tensor logits = torch::randn({n, vocab}, torch::kDouble);
  const torch::Tensor labels = random_labels(n, vocab, 3);
  const auto [logps, lse] = ops::token_logps(logits, labels, kIgnore, 1.3);
  const torch::Tensor g = torch::randn({n}, torch::kDouble);
  const RowMatrix expected = reference_grad(testing::to_matrix(logits), testing::to_labels(labels),
                                            testing::to_vector(g), 1.3);
  for (int64_t v0 : {0, 13, 40}) {
    const int64_t width = std::min<int64_t>(13, vocab - v0);
    torch::Tensor slice = logits.narrow(1, v0, width).contiguous();
    ops::detail::token_logps_backward_inplace(g, slice, labels, lse, kIgnore, 1.3, v0, vocab);
    EXPECT_LT((expected.middleCols(v0, width) - testing::to_matrix(slice)).cwiseAbs().maxCoeff(), 1e-12) << v0;
  }
}

using testing::expect_error;

TEST(TokenLogpsInplace, BadInputGivesClearErrors) {
  const torch::Tensor labels = torch::tensor({0, 1, 2}, torch::kLong);
  const torch::Tensor lse = torch::zeros({3});
  const torch::Tensor g = torch::ones({3});
  expect_error([&] { ops::detail::token_logps_backward_inplace(g, torch::randn({5, 3}).t(), labels, lse, kIgnore, 1.0); },
               "logits must have a contiguous vocabulary dimension for the in-place backward");
  expect_error([&] { ops::detail::token_logps_backward_inplace(g, torch::randn({1, 5}).expand({3, 5}), labels, lse, kIgnore, 1.0); },
               "logits must not have overlapping rows for the in-place backward");
  expect_error([&] { ops::detail::token_logps_backward_inplace(g, torch::randn({3, 5}), labels, lse, kIgnore, 1.0, 8, 10); },
               "the slice [8, 13) of the logits must lie within the vocabulary of 10 classes");
  expect_error([&] { ops::detail::token_logps_backward_inplace(g, torch::randn({3, 5}), labels, lse, kIgnore, 1.0, -1); },
               "label_offset must be >= 0, got -1");
}

}  // namespace
}  // namespace prefopt
