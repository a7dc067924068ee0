// Tests of prefopt::sequence_logps: per-token and per-sequence log-probs against a float64 reference
// written from the definition (sum, or mean, of log softmax at the labels over non-ignored positions),
// gradients, the average mode's empty-row rule, low-precision inputs and bad shapes.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/scoring.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

// Per-sequence summed (or mean) log-probs in plain float64 loops.
Eigen::VectorXd reference_sequence_logps(const torch::Tensor& logits, const torch::Tensor& labels, bool average,
                                         int64_t ignore_index = -100) {
  const int64_t batch = logits.size(0), steps = logits.size(1);
  Eigen::VectorXd out(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const testing::RowMatrix rows = testing::to_matrix(logits[b]);
    const auto lab = testing::to_labels(labels[b]);
    double total = 0;
    int64_t count = 0;
    for (int64_t t = 0; t < steps; ++t) {
      if (lab[t] == ignore_index) continue;
      const double m = rows.row(t).maxCoeff();
      total += rows(t, lab[t]) - (m + std::log((rows.row(t).array() - m).exp().sum()));
      ++count;
    }
    out(b) = average ? (count > 0 ? total / count : 0.0) : total;
  }
  return out;
}

TEST(SequenceLogps, SumAndMeanMatchReference) {
  torch::manual_seed(1);
  const torch::Tensor logits = 2 * torch::randn({3, 6, 17}, torch::kDouble);
  torch::Tensor labels = torch::randint(17, {3, 6}, torch::kLong);
  labels.index_put_({0, torch::indexing::Slice(0, 2)}, -100);  // a prompt
  labels.index_put_({2, torch::indexing::Slice(4)}, -100);     // padding
  for (bool average : {false, true}) {
    const auto out = sequence_logps(logits, labels, SequenceLogpsOptions().average(average));
    EXPECT_EQ(out.logps.sizes(), torch::IntArrayRef({3}));
    EXPECT_EQ(out.token_logps.sizes(), torch::IntArrayRef({3, 6}));
    EXPECT_LT(testing::max_abs_diff(reference_sequence_logps(logits, labels, average), out.logps), 1e-12);
    EXPECT_TRUE(out.token_logps.masked_select(labels.eq(-100)).eq(0).all().item<bool>());
  }
}

TEST(SequenceLogps, AverageOfFullyIgnoredRowIsZero) {
  const torch::Tensor logits = torch::randn({2, 3, 5});
  torch::Tensor labels = torch::randint(5, {2, 3}, torch::kLong);
  labels[1].fill_(-100);
  const auto out = sequence_logps(logits, labels, SequenceLogpsOptions().average(true));
  EXPECT_EQ(out.logps[1].item<float>(), 0.0f);
  EXPECT_TRUE(out.logps.isfinite().all().item<bool>());
}

TEST(SequenceLogps, FiniteDifferenceGradcheck) {
  torch::manual_seed(2);
  torch::Tensor labels = torch::randint(7, {2, 4}, torch::kLong);
  labels[0][0] = -100;
  for (bool average : {false, true}) {
    testing::expect_gradcheck(
        [&](const std::vector<torch::Tensor>& in) {
          return sequence_logps(in[0], labels, SequenceLogpsOptions().average(average).temperature(1.3)).logps;
        },
        {torch::randn({2, 4, 7}, torch::kDouble).requires_grad_()});
  }
}

TEST(SequenceLogps, BFloat16LogitsAccumulateInFloat32) {
  torch::manual_seed(4);
  const torch::Tensor logits = torch::randn({2, 64, 301}).to(torch::kBFloat16);
  const torch::Tensor labels = torch::randint(301, {2, 64}, torch::kLong);
  const auto out = sequence_logps(logits, labels);
  EXPECT_EQ(out.logps.scalar_type(), torch::kFloat);
  // Reference on the same rounded logits: only the summation's error is left, which fp32 keeps small.
  EXPECT_LT(testing::max_abs_diff(reference_sequence_logps(logits, labels, false), out.logps), 1e-3);
}

TEST(SequenceLogps, BadShapesGiveClearErrors) {
  using testing::expect_error;
  expect_error([] { sequence_logps(torch::randn({2, 3}), torch::zeros({2, 3}, torch::kLong)); },
               "logits must have shape [B, T, V], got [2, 3]");
  expect_error([] { sequence_logps(torch::randn({2, 3, 5}), torch::zeros({2, 4}, torch::kLong)); },
               "labels must have shape [B, T] matching logits [2, 3, 5], got [2, 4]");
  expect_error([] { sequence_logps(torch::randn({2, 3, 5}), torch::full({2, 3}, 9, torch::kLong)); },
               "is out of range");
}

}  // namespace
}  // namespace prefopt
