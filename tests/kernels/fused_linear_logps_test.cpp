// Tests of the fused_linear_logps operator (through prefopt::fused_linear_logps): log p(label) under
// softmax(hidden weight^T / T) and its gradients for hidden and weight against a plain float64 reference
// (Eigen: logits = H W^T, G = g (onehot - softmax) / T, dH = G W, dW = G^T H), at chunk budgets that force one
// row / a few vocabulary columns per chunk and row tiling in the backward; finite differences; the low-precision
// rule of DESIGN.md; ignored rows; bad input; CUDA against CPU (skipped without a device).
#include <cmath>

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

struct Reference {
  Eigen::VectorXd logps;
  RowMatrix grad_hidden, grad_weight;
};

Reference reference(const RowMatrix& h, const RowMatrix& w, const std::vector<int64_t>& labels,
                    const Eigen::VectorXd& g, double temperature) {
  const RowMatrix z = (h * w.transpose()) / temperature;
  RowMatrix grad_logits = RowMatrix::Zero(z.rows(), z.cols());
  Eigen::VectorXd logps = Eigen::VectorXd::Zero(z.rows());
  for (Eigen::Index r = 0; r < z.rows(); ++r) {
    if (labels[r] == kIgnore) continue;
    const double m = z.row(r).maxCoeff();
    const double lse = m + std::log((z.row(r).array() - m).exp().sum());
    logps(r) = z(r, labels[r]) - lse;
    for (Eigen::Index v = 0; v < z.cols(); ++v) {
      grad_logits(r, v) = g(r) * ((v == labels[r] ? 1.0 : 0.0) - std::exp(z(r, v) - lse)) / temperature;
    }
  }
  return {logps, grad_logits * w, grad_logits.transpose() * h};
}

torch::Tensor random_labels(int64_t n, int64_t vocab, int64_t every_ignored = 4) {
  torch::Tensor labels = torch::randint(vocab, {n}, torch::kLong);
  for (int64_t i = 0; i < n; i += every_ignored) labels[i] = kIgnore;
  return labels;
}

double max_diff(const RowMatrix& a, const torch::Tensor& b) { return (a - testing::to_matrix(b)).cwiseAbs().maxCoeff(); }

TEST(FusedLinearLogps, Float64MatchesReferenceAtEveryChunking) {
  torch::manual_seed(7);
  const int64_t n = 13, hdim = 6, vocab = 301;
  const torch::Tensor hidden0 = torch::randn({n, hdim}, torch::kDouble);
  const torch::Tensor weight0 = torch::randn({vocab, hdim}, torch::kDouble);
  const torch::Tensor labels = random_labels(n, vocab);
  const torch::Tensor g = torch::randn({n}, torch::kDouble);
  const Reference ref = reference(testing::to_matrix(hidden0), testing::to_matrix(weight0), testing::to_labels(labels),
                                  testing::to_vector(g), 0.7);
  // 1 byte: one row per forward chunk, 256 columns and one row per backward chunk; 5000: a few rows / columns.
  for (int64_t chunk : {int64_t{1}, int64_t{5000}, int64_t{40000}, int64_t{128} << 20}) {
    torch::Tensor hidden = hidden0.clone().requires_grad_(), weight = weight0.clone().requires_grad_();
    const torch::Tensor logps = fused_linear_logps(
        hidden, weight, labels, FusedLinearLogpsOptions().temperature(0.7).chunk_bytes(chunk));
    ASSERT_EQ(logps.scalar_type(), torch::kDouble);
    EXPECT_LT(testing::max_abs_diff(ref.logps, logps), 1e-12) << "chunk " << chunk;
    logps.backward(g);
    EXPECT_LT(max_diff(ref.grad_hidden, hidden.grad()), 1e-11) << "chunk " << chunk;
    EXPECT_LT(max_diff(ref.grad_weight, weight.grad()), 1e-11) << "chunk " << chunk;
  }
}

TEST(FusedLinearLogps, Float32MatchesReference) {
  torch::manual_seed(8);
  const int64_t n = 40, hdim = 32, vocab = 1000;
  const torch::Tensor hidden0 = torch::randn({n, hdim}) / 4, weight0 = torch::randn({vocab, hdim});
  const torch::Tensor labels = random_labels(n, vocab);
  const torch::Tensor g = torch::randn({n});
  const Reference ref = reference(testing::to_matrix(hidden0), testing::to_matrix(weight0), testing::to_labels(labels),
                                  testing::to_vector(g), 1.0);
  torch::Tensor hidden = hidden0.clone().requires_grad_(), weight = weight0.clone().requires_grad_();
  const torch::Tensor logps = fused_linear_logps(hidden, weight, labels, FusedLinearLogpsOptions().chunk_bytes(20000));
  EXPECT_LT(testing::max_abs_diff(ref.logps, logps), 1e-4);
  logps.backward(g);
  EXPECT_LT(max_diff(ref.grad_hidden, hidden.grad()), 1e-4);
  EXPECT_LT(max_diff(ref.grad_weight, weight.grad()), 1e-4);
}

TEST(FusedLinearLogps, FiniteDifferenceGradcheck) {
  torch::manual_seed(3);
  const torch::Tensor labels = random_labels(5, 11, 3);
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        return fused_linear_logps(in[0], in[1], labels,
                                  FusedLinearLogpsOptions().temperature(0.8).chunk_bytes(11 * 8 * 2));
      },
      {torch::randn({5, 4}, torch::kDouble).requires_grad_(), torch::randn({11, 4}, torch::kDouble).requires_grad_()});
}

TEST(FusedLinearLogps, OnlyRequiredGradientsAreComputed) {
  const torch::Tensor labels = torch::tensor({1, 2, -100}, torch::kLong);
  torch::Tensor hidden = torch::randn({3, 4}).requires_grad_();
  const torch::Tensor weight = torch::randn({7, 4});
  fused_linear_logps(hidden, weight, labels).sum().backward();
  EXPECT_TRUE(hidden.grad().defined());
  EXPECT_TRUE(torch::equal(hidden.grad()[2], torch::zeros({4})));  // the ignored row
  const torch::Tensor h2 = torch::randn({3, 4});
  torch::Tensor w2 = torch::randn({7, 4}).requires_grad_();
  fused_linear_logps(h2, w2, labels).sum().backward();
  EXPECT_TRUE(w2.grad().defined());
  EXPECT_EQ(w2.grad().sizes(), w2.sizes());
}

// DESIGN.md's rule against the composite a user writes in the same dtype: (hidden @ weight^T).log_softmax().gather().
void expect_low_precision_rule(torch::ScalarType dtype) {
  torch::manual_seed(11);
  const int64_t n = 48, hdim = 64, vocab = 777;
  const torch::Tensor hidden0 = (torch::randn({n, hdim}, torch::kDouble) / 4).to(dtype);
  const torch::Tensor weight0 = torch::randn({vocab, hdim}, torch::kDouble).to(dtype);
  const torch::Tensor labels = random_labels(n, vocab);
  const torch::Tensor g = torch::randn({n}, torch::kDouble);
  const Reference ref = reference(testing::to_matrix(hidden0), testing::to_matrix(weight0), testing::to_labels(labels),
                                  testing::to_vector(g), 1.0);
  torch::Tensor hf = hidden0.clone().requires_grad_(), wf = weight0.clone().requires_grad_();
  const torch::Tensor fused = fused_linear_logps(hf, wf, labels, FusedLinearLogpsOptions().chunk_bytes(20000));
  fused.backward(g.to(torch::kFloat));
  torch::Tensor hc = hidden0.clone().requires_grad_(), wc = weight0.clone().requires_grad_();
  const torch::Tensor mask = labels.ne(kIgnore).to(dtype);
  const torch::Tensor composite =
      torch::log_softmax(torch::mm(hc, wc.t()), -1).gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1) * mask;
  composite.backward(g.to(dtype));
  const double fe = testing::max_abs_diff(ref.logps, fused), ce = testing::max_abs_diff(ref.logps, composite);
  // The matmul is ATen's in both: its output rounding to the dtype dominates, so the fused error stays below
  // twice the composite's.
  EXPECT_LE(fe, 2 * ce + 1e-6) << "fused " << fe << " composite " << ce;
  const double fh = max_diff(ref.grad_hidden, hf.grad()), ch = max_diff(ref.grad_hidden, hc.grad());
  EXPECT_LE(fh, 2 * ch + 1e-6) << "grad_hidden fused " << fh << " composite " << ch;
  const double fw = max_diff(ref.grad_weight, wf.grad()), cw = max_diff(ref.grad_weight, wc.grad());
  EXPECT_LE(fw, 2 * cw + 1e-6) << "grad_weight fused " << fw << " composite " << cw;
}

TEST(FusedLinearLogps, BFloat16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kBFloat16); }
TEST(FusedLinearLogps, Float16MeetsLowPrecisionRule) { expect_low_precision_rule(torch::kHalf); }

TEST(FusedLinearLogps, EdgeCases) {
  // Empty batch, V = 1, all ignored.
  torch::Tensor h = torch::randn({0, 4}).requires_grad_();
  const torch::Tensor out = fused_linear_logps(h, torch::randn({5, 4}), torch::empty({0}, torch::kLong));
  EXPECT_EQ(out.numel(), 0);
  out.sum().backward();
  EXPECT_EQ(h.grad().sizes(), h.sizes());
  EXPECT_TRUE(torch::equal(fused_linear_logps(torch::randn({3, 4}), torch::randn({1, 4}), torch::zeros({3}, torch::kLong)),
                           torch::zeros({3})));
  torch::Tensor w = torch::randn({6, 4}).requires_grad_();
  const torch::Tensor all_ignored = fused_linear_logps(torch::randn({3, 4}), w, torch::full({3}, kIgnore, torch::kLong));
  EXPECT_TRUE(torch::equal(all_ignored, torch::zeros({3})));
  all_ignored.sum().backward();
  EXPECT_TRUE(torch::equal(w.grad(), torch::zeros({6, 4})));
  // Non-contiguous hidden and weight.
  const torch::Tensor hb = torch::randn({4, 10}, torch::kDouble), wb = torch::randn({4, 9}, torch::kDouble);
  const torch::Tensor labels = torch::tensor({0, 8, -100, 3, 2, 1, 0, 5, 6, 7}, torch::kLong);
  const Reference ref = reference(testing::to_matrix(hb.t()), testing::to_matrix(wb.t()), testing::to_labels(labels),
                                  Eigen::VectorXd::Ones(10), 1.0);
  EXPECT_LT(testing::max_abs_diff(ref.logps, fused_linear_logps(hb.t(), wb.t(), labels)), 1e-12);
}

using testing::expect_error;

TEST(FusedLinearLogps, BadInputGivesClearErrors) {
  const torch::Tensor h = torch::randn({4, 8}), w = torch::randn({10, 8});
  const torch::Tensor labels = torch::tensor({0, 1, 2, 3}, torch::kLong);
  expect_error([&] { fused_linear_logps(h, torch::randn({10, 6}), labels); },
               "weight must have shape [V, H] with H = 8 matching hidden [4, 8], got [10, 6]");
  expect_error([&] { fused_linear_logps(h, w.to(torch::kDouble), labels); },
               "weight must have the dtype of hidden (Float), got Double");
  expect_error([&] { fused_linear_logps(h, w, torch::tensor({0, 10, 1, 2}, torch::kLong)); },
               "labels[1] = 10 is out of range: expected a class index in [0, 10) or ignore_index (-100)");
  expect_error([&] { fused_linear_logps(h, w, torch::tensor({0, 1}, torch::kLong)); },
               "labels must have shape [N] matching hidden [4, 8], got [2]");
  expect_error([&] { fused_linear_logps(h, w, labels.to(torch::kInt)); }, "labels must be int64, got Int");
  expect_error([&] { fused_linear_logps(torch::randn({8}), w, labels); }, "hidden must have shape [N, H], got [8]");
  expect_error([&] { fused_linear_logps(h, w, labels, FusedLinearLogpsOptions().chunk_bytes(0)); },
               "chunk_bytes must be > 0, got 0");
  expect_error([&] { fused_linear_logps(h, w, labels, FusedLinearLogpsOptions().temperature(0)); },
               "temperature must be finite and > 0");
}

TEST(FusedLinearLogpsCuda, MatchesCpuKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(21);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const torch::Tensor h = (torch::randn({37, 64}) / 4).to(dtype), w = torch::randn({3001, 64}).to(dtype);
    const torch::Tensor labels = random_labels(37, 3001);
    torch::Tensor hc = h.clone().requires_grad_(), wc = w.clone().requires_grad_();
    torch::Tensor hg = h.cuda().requires_grad_(), wg = w.cuda().requires_grad_();
    const auto opts = FusedLinearLogpsOptions().chunk_bytes(100000);
    const torch::Tensor cpu = fused_linear_logps(hc, wc, labels, opts);
    const torch::Tensor gpu = fused_linear_logps(hg, wg, labels.cuda(), opts);
    EXPECT_LT((cpu - gpu.cpu()).abs().max().item<double>(), dtype == torch::kFloat ? 1e-3 : 5e-2);
    cpu.sum().backward();
    gpu.sum().backward();
    EXPECT_LT((hc.grad().to(torch::kFloat) - hg.grad().cpu().to(torch::kFloat)).abs().max().item<double>(), 5e-2);
    EXPECT_LT((wc.grad().to(torch::kFloat) - wg.grad().cpu().to(torch::kFloat)).abs().max().item<double>(), 5e-2);
  }
}

}  // namespace
}  // namespace prefopt
