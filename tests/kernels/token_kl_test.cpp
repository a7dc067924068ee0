// Tests of the token_kl operator (through prefopt::token_kl / sequence_kl): forward and backward against a
// plain float64 reference written from the formula KL_t = sum_v p_ref(v) (log p_ref(v) - log p_pol(v)) with
// p = softmax(logits / T), finite-difference gradients, every CPU instruction set, the low-precision rule of
// DESIGN.md, edge cases (V not a multiple of the vector width, V = 1, ignored rows, -inf rows, +-1e4,
// non-contiguous, empty) and bad input. The CUDA test compares with the CPU kernel and skips without a device.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include "../../kernels/cpu/capability.h"
#include <prefopt/scoring.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

using testing::RowMatrix;
using CpuCapability = kernels::cpu::CpuCapability;

constexpr int64_t kIgnore = -100;
const double kInf = std::numeric_limits<double>::infinity();

Eigen::VectorXd log_softmax_row(const Eigen::VectorXd& z) {
  const double m = z.maxCoeff();
  const double lse = m + std::log((z.array() - m).exp().sum());
  return z.array() - lse;
}

// KL(ref || policy) per row in float64; 0 for ignored rows (labels empty: none ignored).
Eigen::VectorXd reference_kl(const RowMatrix& pol, const RowMatrix& ref, const std::vector<int64_t>& labels,
                             double temperature) {
  Eigen::VectorXd out = Eigen::VectorXd::Zero(pol.rows());
  for (Eigen::Index r = 0; r < pol.rows(); ++r) {
    if (!labels.empty() && labels[r] == kIgnore) continue;
    const Eigen::VectorXd lr = log_softmax_row(ref.row(r).transpose() / temperature);
    const Eigen::VectorXd lp = log_softmax_row(pol.row(r).transpose() / temperature);
    double kl = 0;
    for (Eigen::Index v = 0; v < pol.cols(); ++v) {
      const double p = std::exp(lr(v));
      if (p > 0) kl += p * (lr(v) - lp(v));
    }
    out(r) = kl;
  }
  return out;
}

// d sum_r g_r KL_r / d policy = g_r (p_pol - p_ref) / T.
RowMatrix reference_grad(const RowMatrix& pol, const RowMatrix& ref, const std::vector<int64_t>& labels,
                         const Eigen::VectorXd& g, double temperature) {
  RowMatrix out = RowMatrix::Zero(pol.rows(), pol.cols());
  for (Eigen::Index r = 0; r < pol.rows(); ++r) {
    if (!labels.empty() && labels[r] == kIgnore) continue;
    const Eigen::VectorXd lr = log_softmax_row(ref.row(r).transpose() / temperature);
    const Eigen::VectorXd lp = log_softmax_row(pol.row(r).transpose() / temperature);
    for (Eigen::Index v = 0; v < pol.cols(); ++v) {
      out(r, v) = g(r) * (std::exp(lp(v)) - std::exp(lr(v))) / temperature;
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

class TokenKlFloat64 : public ::testing::TestWithParam<Case> {};

TEST_P(TokenKlFloat64, ForwardAndBackwardMatchReference) {
  const Case c = GetParam();
  torch::manual_seed(7);
  torch::Tensor pol = (3 * torch::randn({c.rows, c.vocab}, torch::kDouble)).requires_grad_();
  const torch::Tensor ref = pol.detach() + torch::randn({c.rows, c.vocab}, torch::kDouble);
  const torch::Tensor labels = random_labels(c.rows, c.vocab);
  const torch::Tensor kl = token_kl(pol, ref, labels, kIgnore, c.temperature);
  ASSERT_EQ(kl.scalar_type(), torch::kDouble);
  const auto lab = testing::to_labels(labels);
  const RowMatrix x = testing::to_matrix(pol), y = testing::to_matrix(ref);
  EXPECT_LT(testing::max_abs_diff(reference_kl(x, y, lab, c.temperature), kl), 1e-11);
  const torch::Tensor g = torch::randn({c.rows}, torch::kDouble);
  kl.backward(g);
  const RowMatrix expected = reference_grad(x, y, lab, testing::to_vector(g), c.temperature);
  EXPECT_LT((expected - testing::to_matrix(pol.grad())).cwiseAbs().maxCoeff(), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TokenKlFloat64,
                         ::testing::Values(Case{8, 37, 1.0}, Case{5, 1, 1.0}, Case{6, 64, 0.7}, Case{3, 4099, 2.0},
                                           Case{2, 2048, 1.0}, Case{1, 16, 1.0}));

TEST(TokenKl, EveryCpuInstructionSetMatchesReference) {
  torch::manual_seed(13);
  const auto saved = kernels::cpu::cpu_capability();
  for (auto cap : {CpuCapability::kDefault, CpuCapability::kAvx2, CpuCapability::kAvx512}) {
    const auto used = kernels::cpu::set_cpu_capability(cap);
    for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf, torch::kDouble}) {
      for (int64_t vocab : {1, 7, 31, 33, 100, 2049, 5003}) {
        const torch::Tensor pol = (2 * torch::randn({5, vocab})).to(dtype);
        const torch::Tensor ref = (2 * torch::randn({5, vocab})).to(dtype);
        const torch::Tensor labels = random_labels(5, vocab, 3);
        const auto lab = testing::to_labels(labels);
        const double tol = dtype == torch::kDouble ? 1e-11 : 2e-5;
        torch::Tensor x = pol.clone().requires_grad_();
        const torch::Tensor kl = token_kl(x, ref, labels, kIgnore, 0.9);
        EXPECT_LT(testing::max_abs_diff(reference_kl(testing::to_matrix(pol), testing::to_matrix(ref), lab, 0.9), kl),
                  tol)
            << kernels::cpu::cpu_capability_name(used) << " " << dtype << " V=" << vocab;
        const torch::Tensor g = torch::randn({5});
        kl.backward(g.to(kl.scalar_type()));
        const RowMatrix expected =
            reference_grad(testing::to_matrix(pol), testing::to_matrix(ref), lab, testing::to_vector(g), 0.9);
        const double gtol = dtype == torch::kDouble ? 1e-12 : (dtype == torch::kFloat ? 1e-6 : 1e-2);
        EXPECT_LT((expected - testing::to_matrix(x.grad())).cwiseAbs().maxCoeff(), gtol)
            << kernels::cpu::cpu_capability_name(used) << " " << dtype << " V=" << vocab;
      }
    }
  }
  kernels::cpu::set_cpu_capability(saved);
}

TEST(TokenKl, FiniteDifferenceGradcheck) {
  torch::manual_seed(3);
  const torch::Tensor labels = random_labels(6, 13, 3);
  const torch::Tensor ref = torch::randn({6, 13}, torch::kDouble);
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& in) { return token_kl(in[0], ref, labels, kIgnore, 0.8); },
      {torch::randn({6, 13}, torch::kDouble).requires_grad_()});
}

TEST(TokenKl, ReferenceIsDetached) {
  torch::Tensor pol = torch::randn({4, 9}, torch::kDouble).requires_grad_();
  torch::Tensor ref = torch::randn({4, 9}, torch::kDouble).requires_grad_();
  token_kl(pol, ref).sum().backward();
  EXPECT_TRUE(pol.grad().defined());
  EXPECT_FALSE(ref.grad().defined());
}

TEST(TokenKl, IdenticalRowsGiveZero) {
  const torch::Tensor x = 5 * torch::randn({6, 301});
  const torch::Tensor kl = token_kl(x, x.clone());
  EXPECT_LT(kl.abs().max().item<double>(), 1e-6);
}

TEST(TokenKl, WithoutLabelsEveryRowIsScored) {
  const torch::Tensor pol = torch::randn({4, 17}, torch::kDouble), ref = torch::randn({4, 17}, torch::kDouble);
  const Eigen::VectorXd expected = reference_kl(testing::to_matrix(pol), testing::to_matrix(ref), {}, 1.0);
  EXPECT_LT(testing::max_abs_diff(expected, token_kl(pol, ref)), 1e-12);
  EXPECT_TRUE((token_kl(pol, ref) > 0).all().item<bool>());
}

// DESIGN.md: the low-precision kernel's error against float64 is at most twice that of the same-dtype ATen
// composite (softmax, log_softmax and a sum in that dtype), and within a fixed tolerance.
void expect_low_precision_rule(torch::ScalarType dtype, double fixed_tol) {
  torch::manual_seed(11);
  const int64_t rows = 64, vocab = 3001;
  const torch::Tensor pol = (3 * torch::randn({rows, vocab}, torch::kDouble)).to(dtype);
  const torch::Tensor ref = (3 * torch::randn({rows, vocab}, torch::kDouble)).to(dtype);
  const torch::Tensor labels = random_labels(rows, vocab);
  const auto lab = testing::to_labels(labels);
  const RowMatrix x = testing::to_matrix(pol), y = testing::to_matrix(ref);
  const Eigen::VectorXd expected = reference_kl(x, y, lab, 1.0);
  const torch::Tensor mask = labels.ne(kIgnore).to(dtype);
  auto composite = [&](const torch::Tensor& p) {
    const torch::Tensor lr = torch::log_softmax(ref, -1);
    return (lr.exp() * (lr - torch::log_softmax(p, -1))).sum(-1) * mask;
  };
  torch::Tensor xf = pol.clone().requires_grad_();
  const torch::Tensor fused = token_kl(xf, ref, labels);
  torch::Tensor xc = pol.clone().requires_grad_();
  const torch::Tensor comp = composite(xc);
  const double fused_err = testing::max_abs_diff(expected, fused);
  const double comp_err = testing::max_abs_diff(expected, comp);
  EXPECT_LE(fused_err, std::max(2 * comp_err, 1e-6)) << "fused " << fused_err << " composite " << comp_err;
  EXPECT_LE(fused_err, fixed_tol);
  const torch::Tensor g = torch::randn({rows}, torch::kDouble);
  fused.backward(g.to(torch::kFloat));
  comp.backward(g.to(dtype));
  const RowMatrix ref_grad = reference_grad(x, y, lab, testing::to_vector(g), 1.0);
  const double fused_gerr = (ref_grad - testing::to_matrix(xf.grad())).cwiseAbs().maxCoeff();
  const double comp_gerr = (ref_grad - testing::to_matrix(xc.grad())).cwiseAbs().maxCoeff();
  EXPECT_LE(fused_gerr, std::max(2 * comp_gerr, 1e-6)) << "fused " << fused_gerr << " composite " << comp_gerr;
}

TEST(TokenKl, BFloat16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kBFloat16, 1e-4); }
TEST(TokenKl, Float16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kHalf, 1e-4); }

TEST(TokenKl, AllIgnoredGivesZerosAndZeroGradient) {
  torch::Tensor pol = torch::randn({4, 9}).requires_grad_();
  const torch::Tensor labels = torch::full({4}, kIgnore, torch::kLong);
  const torch::Tensor kl = token_kl(pol, torch::randn({4, 9}), labels);
  EXPECT_TRUE(torch::equal(kl, torch::zeros({4})));
  kl.sum().backward();
  EXPECT_TRUE(torch::equal(pol.grad(), torch::zeros({4, 9})));
}

TEST(TokenKl, RowsOfMinusInfinity) {
  torch::Tensor pol = torch::full({3, 6}, -kInf, torch::kDouble);
  torch::Tensor ref = torch::full({3, 6}, -kInf, torch::kDouble);
  pol[0][2] = 1.0;  // both one-hot on the same entry: KL 0
  ref[0][2] = 4.0;
  pol[1][1] = 0.0;  // policy mass on 1 and 3, reference on 1 only: KL = log 2
  pol[1][3] = 0.0;
  ref[1][1] = 2.0;
  pol[2][0] = 0.0;  // reference mass where the policy has none: +inf
  ref[2][5] = 0.0;
  pol.requires_grad_();
  const torch::Tensor kl = token_kl(pol, ref);
  EXPECT_EQ(kl[0].item<double>(), 0.0);
  EXPECT_NEAR(kl[1].item<double>(), std::log(2.0), 1e-12);
  EXPECT_EQ(kl[2].item<double>(), kInf);
  kl.narrow(0, 0, 2).sum().backward();
  EXPECT_TRUE(pol.grad().isfinite().all().item<bool>());
  EXPECT_NEAR(pol.grad()[1][3].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(pol.grad()[1][1].item<double>(), -0.5, 1e-12);
}

TEST(TokenKl, ExtremeLogitsStayFinite) {
  torch::manual_seed(5);
  const torch::Tensor sign = torch::randint(0, 2, {6, 50}, torch::kDouble) * 2 - 1;
  const torch::Tensor pol = (sign * 1e4 + torch::randn({6, 50}, torch::kDouble)).to(torch::kFloat);
  const torch::Tensor ref = (sign * 1e4 + torch::randn({6, 50}, torch::kDouble)).to(torch::kFloat);
  torch::Tensor x = pol.clone().requires_grad_();
  const torch::Tensor kl = token_kl(x, ref);
  ASSERT_TRUE(kl.isfinite().all().item<bool>());
  EXPECT_LT(testing::max_abs_diff(reference_kl(testing::to_matrix(pol), testing::to_matrix(ref), {}, 1.0), kl), 4e-3);
  kl.sum().backward();
  EXPECT_TRUE(x.grad().isfinite().all().item<bool>());
}

TEST(TokenKl, NonContiguousInputs) {
  torch::manual_seed(9);
  const torch::Tensor base_p = torch::randn({40, 12}, torch::kDouble), base_r = torch::randn({40, 12}, torch::kDouble);
  const torch::Tensor labels = random_labels(12, 40);
  const torch::Tensor pol = base_p.t(), ref = base_r.t();  // [12, 40], vocabulary stride 12
  const Eigen::VectorXd expected =
      reference_kl(testing::to_matrix(pol), testing::to_matrix(ref), testing::to_labels(labels), 1.0);
  EXPECT_LT(testing::max_abs_diff(expected, token_kl(pol, ref, labels)), 1e-12);
  const torch::Tensor sliced_p = base_p.slice(0, 0, 40, 3), sliced_r = base_r.slice(0, 0, 40, 3);
  const Eigen::VectorXd expected2 = reference_kl(testing::to_matrix(sliced_p), testing::to_matrix(sliced_r), {}, 1.0);
  EXPECT_LT(testing::max_abs_diff(expected2, token_kl(sliced_p, sliced_r)), 1e-12);
}

TEST(TokenKl, EmptyBatch) {
  torch::Tensor pol = torch::randn({0, 7}).requires_grad_();
  const torch::Tensor kl = token_kl(pol, torch::randn({0, 7}), torch::empty({0}, torch::kLong));
  EXPECT_EQ(kl.numel(), 0);
  kl.sum().backward();
  EXPECT_EQ(pol.grad().sizes(), pol.sizes());
}

TEST(SequenceKl, SumsScoredPositions) {
  torch::manual_seed(17);
  const torch::Tensor pol = torch::randn({2, 5, 11}, torch::kDouble), ref = torch::randn({2, 5, 11}, torch::kDouble);
  torch::Tensor labels = torch::randint(11, {2, 5}, torch::kLong);
  labels[0][0] = kIgnore;
  labels[1][4] = kIgnore;
  const torch::Tensor k = sequence_kl(pol, ref, labels);
  ASSERT_EQ(k.sizes(), torch::IntArrayRef({2}));
  const Eigen::VectorXd per_token = reference_kl(testing::to_matrix(pol.reshape({10, 11})),
                                                 testing::to_matrix(ref.reshape({10, 11})),
                                                 testing::to_labels(labels.reshape({10})), 1.0);
  EXPECT_NEAR(k[0].item<double>(), per_token.head(5).sum(), 1e-12);
  EXPECT_NEAR(k[1].item<double>(), per_token.tail(5).sum(), 1e-12);
}

using testing::expect_error;

TEST(TokenKl, BadInputGivesClearErrors) {
  const torch::Tensor pol = torch::randn({3, 5});
  expect_error([&] { token_kl(pol, torch::randn({3, 6})); }, "ref_logits must have the shape of policy_logits [3, 5], got [3, 6]");
  expect_error([&] { token_kl(pol, torch::randn({3, 5}, torch::kDouble)); },
               "ref_logits must have the dtype of policy_logits (Float), got Double");
  expect_error([&] { token_kl(pol, pol, torch::tensor({0, 1}, torch::kLong)); },
               "labels must have shape [N] matching policy_logits [3, 5], got [2]");
  expect_error([&] { token_kl(pol, pol, torch::tensor({0, 1, 1}, torch::kInt)); }, "labels must be int64, got Int");
  expect_error([&] { token_kl(torch::randn({3}), torch::randn({3})); }, "policy_logits must have shape [N, V], got [3]");
  expect_error([&] { token_kl(torch::ones({3, 5}, torch::kLong), torch::ones({3, 5}, torch::kLong)); },
               "policy_logits must be a floating tensor");
  expect_error([&] { token_kl(pol, pol, {}, kIgnore, -1.0); }, "temperature must be finite and > 0, got -1");
  expect_error([&] { sequence_kl(pol, pol, torch::zeros({3}, torch::kLong)); },
               "policy_logits must have shape [B, T, V], got [3, 5]");
}

TEST(TokenKlCuda, MatchesCpuKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(21);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (int64_t vocab : {37, 1000, 5003}) {
      const torch::Tensor pol = (3 * torch::randn({33, vocab})).to(dtype);
      const torch::Tensor ref = (3 * torch::randn({33, vocab})).to(dtype);
      const torch::Tensor labels = random_labels(33, vocab);
      torch::Tensor cpu_x = pol.clone().requires_grad_();
      torch::Tensor gpu_x = pol.cuda().requires_grad_();
      const torch::Tensor cpu = token_kl(cpu_x, ref, labels);
      const torch::Tensor gpu = token_kl(gpu_x, ref.cuda(), labels.cuda());
      EXPECT_LT((cpu - gpu.cpu()).abs().max().item<double>(), 1e-4);
      const torch::Tensor g = torch::randn({33});
      cpu.backward(g);
      gpu.backward(g.cuda());
      EXPECT_LT((cpu_x.grad().to(torch::kFloat) - gpu_x.grad().cpu().to(torch::kFloat)).abs().max().item<double>(),
                1e-2);
    }
  }
}

}  // namespace
}  // namespace prefopt
