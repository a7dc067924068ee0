// Tests of the packed forward (hidden_states_packed / forward_packed): each sequence of a packed row gets the
// hidden states it gets alone (full attention, sliding windows, Qwen3's norms, dynamic rope), attention never
// crosses a boundary (perturbing one sequence leaves the others' outputs bit-identical), activation checkpointing
// gives the same gradients, and bad packed input is named. The flash-attention path runs only on CUDA.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <prefopt/model/llama.h>

#include "support/expect_error.h"

namespace prefopt {
namespace {

LlamaConfig tiny(LlamaArchitecture arch = LlamaArchitecture::kLlama) {
  return LlamaConfig()
      .architecture(arch)
      .vocab_size(37)
      .hidden_size(32)
      .intermediate_size(48)
      .num_hidden_layers(2)
      .num_attention_heads(4)
      .num_key_value_heads(2)
      .max_position_embeddings(64)
      .initializer_range(0.3);  // large weights, so that every token moves every later one
}

// Sequences of 1, 6, 13 and 4 tokens (a 13x spread), packed: ids [1, 24], positions, cu_seqlens.
struct PackedInput {
  std::vector<std::vector<int64_t>> sequences = {{5},
                                                 {3, 14, 15, 9, 2, 6},
                                                 {35, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6},
                                                 {1, 1, 2, 3}};
  torch::Tensor ids, positions, cu;
  PackedInput() { build(); }
  void build() {
    std::vector<int64_t> flat, pos, offsets{0};
    for (const auto& s : sequences) {
      for (size_t i = 0; i < s.size(); ++i) {
        flat.push_back(s[i]);
        pos.push_back(static_cast<int64_t>(i));
      }
      offsets.push_back(static_cast<int64_t>(flat.size()));
    }
    ids = torch::tensor(flat, torch::kLong).unsqueeze(0);
    positions = torch::tensor(pos, torch::kLong).unsqueeze(0);
    cu = torch::tensor(offsets, torch::kLong);
  }
  torch::Tensor slice(const torch::Tensor& packed, size_t i) const {
    const int64_t b = cu[static_cast<int64_t>(i)].item<int64_t>(), e = cu[static_cast<int64_t>(i) + 1].item<int64_t>();
    return packed.select(0, 0).slice(0, b, e);
  }
};

}  // namespace

TEST(LlamaPacked, EachSequenceGetsItsOwnForward) {
  const std::vector<std::pair<std::string, LlamaConfig>> cases = {
      {"llama", tiny()},
      {"mistral window 3", tiny(LlamaArchitecture::kMistral).sliding_window(3)},
      {"qwen3 sliding layer 1",
       tiny(LlamaArchitecture::kQwen3).sliding_window(4).layer_types({"full_attention", "sliding_attention"})},
      {"llama dynamic rope", tiny().max_position_embeddings(8).rope_scaling(
                                 RopeScaling().rope_type(RopeType::kDynamic).factor(2))},
  };
  PackedInput in;
  for (const auto& [name, config] : cases) {
    torch::manual_seed(3);
    LlamaForCausalLM model(config);
    model->to(torch::kDouble);
    torch::NoGradGuard no_grad;
    const auto packed = model->hidden_states_packed(in.ids, in.positions, in.cu);
    ASSERT_EQ(packed.sizes(), torch::IntArrayRef({1, 24, 32})) << name;
    for (size_t i = 0; i < in.sequences.size(); ++i) {
      auto alone = model->hidden_states(torch::tensor(in.sequences[i], torch::kLong).unsqueeze(0));
      // Dynamic rope scales by the forward's largest position: only the longest sequence, alone, reaches the
      // packed row's.
      if (config.rope_scaling().rope_type() == RopeType::kDynamic && i != 2) continue;
      EXPECT_TRUE(torch::allclose(in.slice(packed, i), alone[0], 1e-10, 1e-12)) << name << " sequence " << i;
    }
    const auto logits = model->forward_packed(in.ids, in.positions, in.cu);
    EXPECT_TRUE(torch::allclose(logits, model->logits(packed)));
  }
}

TEST(LlamaPacked, AttentionNeverCrossesABoundary) {
  for (const auto& config : {tiny(), tiny(LlamaArchitecture::kMistral).sliding_window(3)}) {
    torch::manual_seed(5);
    LlamaForCausalLM model(config);
    torch::NoGradGuard no_grad;
    PackedInput in;
    const auto before = model->hidden_states_packed(in.ids, in.positions, in.cu);
    // Perturb sequence 2 (its tokens, not its length): every other sequence's outputs stay bit-identical.
    for (auto& t : in.sequences[2]) t = (t * 7 + 3) % 37;
    in.build();
    const auto after = model->hidden_states_packed(in.ids, in.positions, in.cu);
    for (size_t i : {0u, 1u, 3u}) EXPECT_TRUE(torch::equal(in.slice(after, i), in.slice(before, i))) << i;
    EXPECT_FALSE(torch::equal(in.slice(after, 2), in.slice(before, 2)));
  }
}

TEST(LlamaPacked, CheckpointingGivesTheSameGradients) {
  torch::manual_seed(8);
  LlamaForCausalLM model(tiny(LlamaArchitecture::kQwen3).sliding_window(4).layer_types(
      {"sliding_attention", "full_attention"}));
  model->train();
  PackedInput in;
  auto grads = [&](bool checkpointing) {
    model->set_gradient_checkpointing(checkpointing);
    model->zero_grad();
    model->forward_packed(in.ids, in.positions, in.cu).log_softmax(-1).select(-1, 4).sum().backward();
    std::vector<torch::Tensor> out;
    for (const auto& p : model->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto plain = grads(false), ckpt = grads(true);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double scale = plain[i].abs().max().item<double>();
    EXPECT_LE((ckpt[i] - plain[i]).abs().max().item<double>(), 1e-6 * scale + 1e-12) << i;
  }
}

TEST(LlamaPacked, BadPackedInputIsNamed) {
  using testing::expect_error;
  LlamaForCausalLM model(tiny());
  PackedInput in;
  expect_error([&] { model->hidden_states_packed(in.ids.repeat({2, 1}), in.positions, in.cu); },
               "packed input_ids must be one row [1, S]");
  expect_error([&] { model->hidden_states_packed(in.ids, {}, in.cu); }, "packed sequences need position_ids");
  expect_error([&] { model->hidden_states_packed(in.ids, in.positions, torch::tensor({0, 5, 23}, torch::kLong)); },
               "cu_seqlens must run from 0 to the row's length 24, got 0 .. 23");
  expect_error([&] { model->hidden_states_packed(in.ids, in.positions, torch::tensor({0, 9, 5, 24}, torch::kLong)); },
               "cu_seqlens must be non-decreasing, got 5 after 9 at index 2");
  expect_error([&] { model->hidden_states_packed(in.ids, in.positions, torch::Tensor()); },
               "hidden_states_packed needs cu_seqlens");
}

TEST(LlamaPackedCuda, FlashVarlenMatchesPerSequenceAttention) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto& config : {tiny(), tiny(LlamaArchitecture::kMistral).sliding_window(3)}) {
    torch::manual_seed(5);
    LlamaForCausalLM model(config);
    model->to(torch::kCUDA, torch::kBFloat16);
    PackedInput in;
    // bf16 on CUDA takes ATen's variable-length flash attention; each sequence alone takes plain SDPA.
    const auto packed = model->hidden_states_packed(in.ids.cuda(), in.positions.cuda(), in.cu).to(torch::kFloat32);
    for (size_t i = 0; i < in.sequences.size(); ++i) {
      const auto alone = model->hidden_states(torch::tensor(in.sequences[i], torch::kLong).unsqueeze(0).cuda());
      EXPECT_TRUE(torch::allclose(in.slice(packed, i), alone[0].to(torch::kFloat32), 3e-2, 3e-2)) << i;
    }
    model->forward_packed(in.ids.cuda(), in.positions.cuda(), in.cu).to(torch::kFloat32).sum().backward();
    for (const auto& p : model->parameters()) EXPECT_TRUE(p.grad().isfinite().all().item<bool>());
  }
}

}  // namespace prefopt
