// Tests of packing: a collated batch's sequences end to end with cu_seqlens, positions restarting at each sequence
// and labels that never cross a boundary, written out by hand for small batches; pack_like / unpack as inverse
// gathers (with gradient); token-budget batching; and the errors for batches that are not right-padded.
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <prefopt/data/packing.h>

#include "support/expect_error.h"

namespace pd = prefopt::data;

namespace {

std::vector<int64_t> values(const torch::Tensor& t) {
  const auto c = t.to(torch::kLong).contiguous().view({-1});
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

TEST(DataPacking, PairsAreLaidEndToEnd) {
  // Prompt {1, 2}; chosen {3, 4, 5}; rejected {6}: rows of 5 and 3 tokens, T = 5.
  const auto batch = pd::collate_pairs({{{1, 2}, {3, 4, 5}, {6}}}, pd::CollateOptions().pad_token_id(0));
  const auto packed = pd::pack(batch);
  EXPECT_EQ(values(packed.input_ids), (std::vector<int64_t>{1, 2, 3, 4, 5, 1, 2, 6}));
  EXPECT_EQ(values(packed.position_ids), (std::vector<int64_t>{0, 1, 2, 3, 4, 0, 1, 2}));
  // Position 1 predicts 3, ... 3 predicts 5; the chosen's last token predicts nothing, and neither does the
  // rejected's (it does not predict the next sequence's first token).
  EXPECT_EQ(values(packed.labels), (std::vector<int64_t>{-100, 3, 4, 5, -100, -100, 6, -100}));
  EXPECT_EQ(values(packed.cu_seqlens), (std::vector<int64_t>{0, 5, 8}));
  EXPECT_EQ(values(packed.padded_index), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(packed.num_sequences, 2);
  EXPECT_EQ(packed.padded_length, 5);
  EXPECT_EQ(packed.max_length, 5);
  EXPECT_EQ(packed.num_tokens(), 8);
  EXPECT_EQ(pd::packed_token_count(pd::PairExample{{1, 2}, {3, 4, 5}, {6}}), 8);
}

TEST(DataPacking, ListsJointPairsAndPaddingToAMultiple) {
  pd::ListExample list;
  list.prompt = {7};
  list.responses = {{8, 9}, {10}};
  list.labels = {1, 0};
  const auto batch = pd::collate_lists({list}, pd::CollateOptions().pad_to_multiple_of(4).list_size(3));
  const auto packed = pd::pack(batch);
  // Three slots: two responses and the missing slot's prompt alone.
  EXPECT_EQ(values(packed.input_ids), (std::vector<int64_t>{7, 8, 9, 7, 10, 7}));
  EXPECT_EQ(values(packed.cu_seqlens), (std::vector<int64_t>{0, 3, 5, 6}));
  EXPECT_EQ(values(packed.padded_index), (std::vector<int64_t>{0, 1, 2, 4, 5, 8}));
  EXPECT_EQ(packed.padded_length, 4);
  EXPECT_EQ(pd::packed_token_count(list), 5);

  const auto joint = pd::collate_joint_pairs({{{1, 2}, {3}, {4}, {5, 6}}});
  const auto pj = pd::pack(joint);
  EXPECT_EQ(values(pd::pack_like(pj, joint.joint_labels)), (std::vector<int64_t>{2, 3, -100, 5, 6, -100}));
}

TEST(DataPacking, UnpackInvertsPackLikeWithGradient) {
  const auto batch = pd::collate_sequences({{1}, {2, 3}}, {{4, 5, 6}, {7}});
  const auto packed = pd::pack(batch);
  auto padded = torch::arange(8, torch::kFloat32).view({2, 4, 1}).repeat({1, 1, 3});
  const auto p = pd::pack_like(packed, padded);
  EXPECT_EQ(p.sizes(), torch::IntArrayRef({7, 3}));
  auto v = p.clone().requires_grad_(true);
  const auto back = pd::unpack(packed, v, -1.0);
  EXPECT_EQ(back.sizes(), torch::IntArrayRef({2, 4, 3}));
  // Row 0 holds 4 tokens, row 1 three and one padding position (-1).
  EXPECT_TRUE(torch::equal(back[0], padded[0]));
  EXPECT_TRUE(torch::equal(back[1].slice(0, 0, 3), padded[1].slice(0, 0, 3)));
  EXPECT_TRUE(torch::equal(back[1][3], torch::full({3}, -1.0)));
  back.sum().backward();
  EXPECT_TRUE(torch::equal(v.grad(), torch::ones({7, 3})));
  // [1, S] values are accepted as well.
  EXPECT_EQ(pd::unpack(packed, torch::zeros({1, 7})).sizes(), torch::IntArrayRef({2, 4}));
}

TEST(DataPacking, TokenBudgetBatches) {
  using Batches = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(pd::token_budget_batches({300, 500, 900, 100}, 1024), (Batches{{0, 2}, {2, 4}}));
  // An example over the budget trains alone; an exact fit closes a batch.
  EXPECT_EQ(pd::token_budget_batches({2000, 24, 1000, 10}, 1024), (Batches{{0, 1}, {1, 3}, {3, 4}}));
  EXPECT_EQ(pd::token_budget_batches({}, 10), Batches{});
  prefopt::testing::expect_error([] { pd::token_budget_batches({1}, 0); }, "max_tokens must be >= 1, got 0");
}

TEST(DataPacking, LeftPaddingIsRefused) {
  pd::SequenceBatch batch;
  batch.input_ids = torch::tensor({{0, 5, 6}}, torch::kLong);
  batch.attention_mask = torch::tensor({{0, 1, 1}}, torch::kLong);
  batch.labels = torch::full({1, 3}, -100, torch::kLong);
  prefopt::testing::expect_error([&] { pd::pack(batch); },
                                 "pack: row 0 of attention_mask is not right padding (1 at column 1 after a 0 at column 0)");
  batch.labels = torch::full({1, 2}, -100, torch::kLong);
  prefopt::testing::expect_error([&] { pd::pack(batch); }, "attention_mask and labels must have the shape of input_ids");
}
