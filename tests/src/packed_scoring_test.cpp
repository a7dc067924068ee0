// Tests of packed scoring: the per-sequence log-probs (summed and averaged), TDPO's KL, WPO's log-weights, the
// entropy and the fused-linear log-probs of packed sequences against float64 references written from the formulas
// (log-softmax over each token's logits, summed over each sequence's scored tokens), with empty and length-1
// sequences, plus the gradients against the padded scoring's and bad input.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <prefopt/packed_scoring.h>

#include "support/expect_error.h"

namespace prefopt {
namespace {

constexpr int64_t kIgnore = -100;

// Sequences of 0, 1, 4, 1 and 9 tokens, vocabulary 11; the last token of each sequence and two others unscored.
struct Packed {
  std::vector<int64_t> offsets = {0, 0, 1, 5, 6, 15};
  torch::Tensor cu, logits, ref_logits, labels, hidden, weight;
  Packed() {
    torch::manual_seed(4);
    cu = torch::tensor(offsets, torch::kLong);
    logits = torch::randn({15, 11}, torch::kFloat64) * 2;
    ref_logits = torch::randn({15, 11}, torch::kFloat64) * 2;
    labels = torch::randint(11, {15}, torch::kLong);
    for (size_t i = 1; i < offsets.size(); ++i) {
      if (offsets[i] > offsets[i - 1]) labels[offsets[i] - 1] = kIgnore;
    }
    labels[7] = kIgnore;
    labels[2] = kIgnore;
    hidden = torch::randn({15, 6}, torch::kFloat64);
    weight = torch::randn({11, 6}, torch::kFloat64);
  }
  // sum over each sequence of f(t) at its scored tokens, and the count of those tokens.
  template <typename F>
  std::vector<double> per_sequence(F f, bool mean = false) const {
    std::vector<double> out;
    for (size_t i = 0; i + 1 < offsets.size(); ++i) {
      double s = 0;
      int n = 0;
      for (int64_t t = offsets[i]; t < offsets[i + 1]; ++t) {
        if (labels[t].item<int64_t>() == kIgnore) continue;
        s += f(t);
        ++n;
      }
      out.push_back(mean ? s / std::max(n, 1) : s);
    }
    return out;
  }
};

void expect_near(const torch::Tensor& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  const auto g = got.to(torch::kFloat64).contiguous();
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(g[static_cast<int64_t>(i)].item<double>(), want[i], tol * (1 + std::abs(want[i]))) << "sequence " << i;
  }
}

}  // namespace

TEST(PackedScoring, LogProbsMatchTheFormula) {
  Packed p;
  const auto logp = torch::log_softmax(p.logits, -1);
  const auto sums = p.per_sequence([&](int64_t t) { return logp[t][p.labels[t].item<int64_t>()].item<double>(); });
  const auto means =
      p.per_sequence([&](int64_t t) { return logp[t][p.labels[t].item<int64_t>()].item<double>(); }, true);
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double tol = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
    const auto out = packed_sequence_logps(p.logits.to(dtype), p.labels, p.cu);
    expect_near(out.logps, sums, tol);
    EXPECT_EQ(out.token_logps.sizes(), torch::IntArrayRef({15}));
    expect_near(packed_sequence_logps(p.logits.to(dtype), p.labels, p.cu, SequenceLogpsOptions().average(true)).logps,
                means, tol);
  }
  expect_near(segment_counts(p.labels, p.cu), {0, 0, 2, 0, 7}, 0);
}

TEST(PackedScoring, KlWpoAndEntropyMatchTheFormulas) {
  Packed p;
  const auto lp = torch::log_softmax(p.logits, -1), lr = torch::log_softmax(p.ref_logits, -1);
  const auto kl = p.per_sequence([&](int64_t t) { return (lr[t].exp() * (lr[t] - lp[t])).sum().item<double>(); });
  const auto wpo = p.per_sequence(
      [&](int64_t t) {
        return lp[t][p.labels[t].item<int64_t>()].item<double>() - torch::logsumexp(2 * lp[t], 0).item<double>();
      },
      true);
  const auto entropy = p.per_sequence([&](int64_t t) { return -(lp[t].exp() * lp[t]).sum().item<double>(); });
  expect_near(packed_sequence_kl(p.logits, p.ref_logits, p.labels, p.cu), kl, 1e-12);
  expect_near(packed_wpo_sequence_log_weights(p.logits, p.labels, p.cu), wpo, 1e-12);
  expect_near(packed_sequence_entropy(p.logits, p.labels, p.cu), entropy, 1e-12);
  expect_near(packed_sequence_kl(p.logits.to(torch::kFloat32), p.ref_logits.to(torch::kFloat32), p.labels, p.cu), kl,
              1e-5);
}

TEST(PackedScoring, FusedLinearLogProbsMatchTheFormulaAndTheirGradients) {
  Packed p;
  const auto logits = torch::matmul(p.hidden, p.weight.t());
  const auto logp = torch::log_softmax(logits, -1);
  const auto sums = p.per_sequence([&](int64_t t) { return logp[t][p.labels[t].item<int64_t>()].item<double>(); });
  auto hidden = p.hidden.clone().requires_grad_(true), weight = p.weight.clone().requires_grad_(true);
  const auto out = packed_fused_linear_logps(hidden, weight, p.labels, p.cu, FusedLinearLogpsOptions().chunk_bytes(64));
  expect_near(out.logps, sums, 1e-12);
  const auto coefficients = torch::tensor({0.5, -1.0, 2.0, 3.0, -0.25}, torch::kFloat64);
  (out.logps * coefficients).sum().backward();
  // The same gradients from the unfused formula.
  auto h2 = p.hidden.clone().requires_grad_(true), w2 = p.weight.clone().requires_grad_(true);
  const auto lp2 = torch::log_softmax(torch::matmul(h2, w2.t()), -1);
  const auto scored = p.labels.ne(kIgnore);
  const auto per_token = lp2.gather(1, p.labels.clamp_min(0).unsqueeze(1)).squeeze(1) * scored;
  const auto segment = torch::repeat_interleave(torch::arange(5), p.cu.slice(0, 1) - p.cu.slice(0, 0, -1));
  (per_token * coefficients.index_select(0, segment)).sum().backward();
  EXPECT_TRUE(torch::allclose(hidden.grad(), h2.grad(), 1e-10, 1e-12));
  EXPECT_TRUE(torch::allclose(weight.grad(), w2.grad(), 1e-10, 1e-12));
}

TEST(PackedScoring, EqualsPaddedScoringOfTheSameSequences) {
  Packed p;
  // The padded layout: one row per sequence, T = 9, logits of padding arbitrary, labels ignored there.
  const int64_t n = 5, t = 9;
  auto padded_logits = torch::randn({n, t, 11}, torch::kFloat64);
  auto padded_labels = torch::full({n, t}, kIgnore, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = p.offsets[i], len = p.offsets[i + 1] - b;
    if (len == 0) continue;
    padded_logits[i].slice(0, 0, len).copy_(p.logits.slice(0, b, b + len));
    padded_labels[i].slice(0, 0, len).copy_(p.labels.slice(0, b, b + len));
  }
  auto a = padded_logits.to(torch::kFloat32).requires_grad_(true);
  auto b = p.logits.to(torch::kFloat32).requires_grad_(true);
  const auto padded = sequence_logps(a, padded_labels);
  const auto packed = packed_sequence_logps(b, p.labels, p.cu);
  EXPECT_TRUE(torch::allclose(packed.logps, padded.logps, 1e-6, 1e-6));
  const auto w = torch::tensor({1.0, 2.0, -3.0, 0.5, 1.5});
  (padded.logps * w).sum().backward();
  (packed.logps * w).sum().backward();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = p.offsets[i], len = p.offsets[i + 1] - s;
    if (len > 0) EXPECT_TRUE(torch::allclose(b.grad().slice(0, s, s + len), a.grad()[i].slice(0, 0, len), 1e-6, 1e-7));
  }
}

TEST(PackedScoring, BadInputIsNamed) {
  using testing::expect_error;
  Packed p;
  expect_error([&] { packed_sequence_logps(p.logits.unsqueeze(0), p.labels, p.cu); },
               "logits must have shape [S, V] (one row per packed token)");
  expect_error([&] { packed_sequence_logps(p.logits, p.labels.slice(0, 1), p.cu); },
               "labels must have shape [S] with S = 15");
  expect_error([&] { packed_sequence_logps(p.logits, p.labels, torch::tensor({0, 14}, torch::kLong)); },
               "cu_seqlens must end at S = 15");
  expect_error([&] { packed_sequence_kl(p.logits, p.ref_logits.slice(0, 1), p.labels, p.cu); },
               "ref_logits must have the shape of policy_logits");
}

}  // namespace prefopt
