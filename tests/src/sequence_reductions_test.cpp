// Tests of LD-DPO's length-desensitised log-probs and the mean token NLL against plain loops over the
// definitions: the first l = min(L_c, L_r) scored tokens at weight 1, the rest at alpha, counted from the
// first scored token wherever the prompt and padding sit.
#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/sequence_reductions.h>
#include "support/eigen_bridge.h"
#include "support/expect_error.h"
#include "support/gradcheck.h"

namespace prefopt {
namespace {

// Scored tokens of row b, in order.
std::vector<double> scored(const torch::Tensor& logps, const torch::Tensor& mask, int64_t b) {
  std::vector<double> out;
  for (int64_t t = 0; t < logps.size(1); ++t) {
    if (mask[b][t].item<bool>()) out.push_back(logps[b][t].item<double>());
  }
  return out;
}

double ld_sum(const std::vector<double>& tokens, size_t shared, double alpha) {
  double total = 0;
  for (size_t j = 0; j < tokens.size(); ++j) total += (j < shared ? 1.0 : alpha) * tokens[j];
  return total;
}

TEST(LdDpoLogps, MatchesDefinitionWithPromptsAndPadding) {
  torch::manual_seed(3);
  const torch::Tensor c = -torch::rand({3, 9}, torch::kDouble), r = -torch::rand({3, 6}, torch::kDouble);
  torch::Tensor cm = torch::ones({3, 9}, torch::kBool), rm = torch::ones({3, 6}, torch::kBool);
  cm.index_put_({0, torch::indexing::Slice(0, 3)}, false);   // prompt
  cm.index_put_({1, torch::indexing::Slice(7)}, false);      // padding
  rm.index_put_({2, torch::indexing::Slice(0, 2)}, false);
  rm.index_put_({0, torch::indexing::Slice(4)}, false);
  for (double alpha : {0.0, 0.3, 1.0}) {
    auto [pc, pr] = ld_dpo_logps(c, cm, r, rm, alpha);
    for (int64_t b = 0; b < 3; ++b) {
      const auto tc = scored(c, cm, b), tr = scored(r, rm, b);
      const size_t shared = std::min(tc.size(), tr.size());
      EXPECT_NEAR(pc[b].item<double>(), ld_sum(tc, shared, alpha), 1e-12);
      EXPECT_NEAR(pr[b].item<double>(), ld_sum(tr, shared, alpha), 1e-12);
    }
  }
}

TEST(LdDpoLogps, GradcheckAndAlphaOneIsThePlainSum) {
  const torch::Tensor cm = torch::rand({2, 5}).gt(0.3), rm = torch::rand({2, 4}).gt(0.3);
  testing::expect_gradcheck(
      [&](const std::vector<torch::Tensor>& x) {
        auto [a, b] = ld_dpo_logps(x[0], cm, x[1], rm, 0.4);
        return torch::cat({a, b});
      },
      {-torch::rand({2, 5}, torch::kDouble).requires_grad_(), -torch::rand({2, 4}, torch::kDouble).requires_grad_()});
  const torch::Tensor c = -torch::rand({2, 5}, torch::kDouble);
  auto [plain, unused] = ld_dpo_logps(c, cm, -torch::rand({2, 4}, torch::kDouble), rm, 1.0);
  EXPECT_TRUE(torch::allclose(plain, (c * cm).sum(1)));
}

TEST(MeanTokenNll, IsMinusTheMeanOverScoredTokens) {
  const torch::Tensor logps = torch::tensor({{-1.0, -2.0, -3.0}, {-4.0, -5.0, -6.0}}, torch::kDouble);
  const torch::Tensor mask = torch::tensor({{false, true, true}, {true, false, false}});
  EXPECT_NEAR(mean_token_nll(logps, mask).item<double>(), (2.0 + 3.0 + 4.0) / 3.0, 1e-12);
  EXPECT_EQ(mean_token_nll(logps, torch::zeros({2, 3}, torch::kBool)).item<double>(), 0.0);
}

TEST(SequenceReductions, BadInputGivesClearErrors) {
  using testing::expect_error;
  const torch::Tensor x = torch::randn({2, 3}), m = torch::ones({2, 3}, torch::kBool);
  expect_error([&] { ld_dpo_logps(x, m, x, m, 1.5); }, "alpha must be in [0, 1], got 1.5");
  expect_error([&] { ld_dpo_logps(x, torch::ones({2, 3}), x, m, 0.5); }, "chosen_mask must be bool, got Float");
  expect_error([&] { ld_dpo_logps(x, m, torch::randn({3, 3}), torch::ones({3, 3}, torch::kBool), 0.5); },
               "rejected_token_logps must have the batch size of chosen_token_logps (2), got 3");
  expect_error([&] { mean_token_nll(x, torch::ones({2, 4}, torch::kBool)); },
               "mask must have the shape of token_logps [2, 3], got [2, 4]");
  expect_error([&] { mean_token_nll(torch::randn({3}), torch::ones({3}, torch::kBool)); },
               "token_logps must be a floating tensor of shape [B, T], got [3]");
}

}  // namespace
}  // namespace prefopt
