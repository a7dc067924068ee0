// Tests of generate: greedy decoding against a manual one-row-at-a-time argmax loop over the model's forward
// (so padding on either side, position ids and batching change nothing), the KV cache against the full re-run
// (identical greedy ids for every architecture, sliding windows shorter than the sequence included), EOS stopping
// and padding after it, top-k, top-p and temperature sampling (reproducible with a generator, never outside the
// top k or the nucleus), the id-list overload, and the errors that name each bad argument.
#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <prefopt/model/generate.h>
#include <prefopt/model/llama.h>
#include "support/expect_error.h"

namespace prefopt {
namespace {

using prefopt::testing::expect_error;

constexpr int64_t kVocab = 23;

LlamaForCausalLM tiny_model(uint64_t seed, LlamaArchitecture architecture = LlamaArchitecture::kLlama,
                            int64_t sliding_window = 0) {
  LlamaForCausalLM model(LlamaConfig()
                             .architecture(architecture)
                             .sliding_window(sliding_window)
                             .vocab_size(kVocab)
                             .hidden_size(32)
                             .intermediate_size(48)
                             .num_hidden_layers(2)
                             .num_attention_heads(4)
                             .num_key_value_heads(2)
                             .max_position_embeddings(64));
  // Large weights, so the argmax changes from step to step and rows differ.
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    if (item.key().find("norm") == std::string::npos) item.value().normal_(0.0, 0.5);
  }
  return model;
}

// Greedy decoding of one prompt, alone and unpadded: the definition generate must match.
std::vector<int64_t> manual_greedy(LlamaForCausalLMImpl& model, std::vector<int64_t> seq, int64_t max_new,
                                   int64_t eos) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < max_new; ++i) {
    auto ids = torch::tensor(seq, torch::kLong).unsqueeze(0);
    const int64_t next = model.forward(ids).select(1, -1).argmax(-1).item<int64_t>();
    out.push_back(next);
    if (next == eos) break;
    seq.push_back(next);
  }
  return out;
}

const std::vector<std::vector<int64_t>> kPrompts = {{1, 5, 7, 9, 2}, {3}, {4, 4, 8}, {11, 12, 13, 14, 15, 16, 17}};

TEST(Generate, GreedyMatchesManualArgmaxLoopWithRightPaddedBatch) {
  auto model = tiny_model(1);
  const int64_t P = 7, B = static_cast<int64_t>(kPrompts.size());
  auto ids = torch::full({B, P}, 0, torch::kLong);
  auto mask = torch::zeros({B, P}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    for (size_t t = 0; t < kPrompts[b].size(); ++t) {
      ids[b][static_cast<int64_t>(t)] = kPrompts[b][t];
      mask[b][static_cast<int64_t>(t)] = 1;
    }
  }
  const auto out = generate(*model, ids, mask, GenerateOptions().max_new_tokens(6));
  ASSERT_EQ(out.sequences.sizes(), (std::vector<int64_t>{B, 6}));
  for (int64_t b = 0; b < B; ++b) {
    const auto expected = manual_greedy(*model, kPrompts[b], 6, /*eos=*/-1);
    EXPECT_EQ(out.completions[b], expected) << "row " << b;
    EXPECT_EQ(out.lengths[b].item<int64_t>(), 6);
    EXPECT_FALSE(out.finished[b].item<bool>());
  }
  // The id-list overload pads the same prompts itself and agrees.
  const auto lists = generate(*model, kPrompts, GenerateOptions().max_new_tokens(6));
  EXPECT_TRUE(lists.sequences.equal(out.sequences));
}

TEST(Generate, LeftPaddedPromptsGiveTheSameTokens) {
  auto model = tiny_model(1);
  const int64_t P = 7, B = static_cast<int64_t>(kPrompts.size());
  auto ids = torch::full({B, P}, 0, torch::kLong);
  auto mask = torch::zeros({B, P}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto L = static_cast<int64_t>(kPrompts[b].size());
    for (int64_t t = 0; t < L; ++t) {
      ids[b][P - L + t] = kPrompts[b][static_cast<size_t>(t)];
      mask[b][P - L + t] = 1;
    }
  }
  const auto left = generate(*model, ids, mask, GenerateOptions().max_new_tokens(6));
  const auto right = generate(*model, kPrompts, GenerateOptions().max_new_tokens(6));
  EXPECT_TRUE(left.sequences.equal(right.sequences));
}

// The cache must give exactly the ids the full re-run gives, for every architecture's attention (Qwen2's biases,
// Qwen3's q/k norms, Mistral's window of 4 positions, shorter than prompt + completion), with padding, stop tokens
// and rows that finish early.
TEST(Generate, KVCacheGreedyIsIdenticalToTheFullRerun) {
  struct Case {
    LlamaArchitecture architecture;
    int64_t window;
    const char* name;
  };
  for (const Case c : {Case{LlamaArchitecture::kLlama, 0, "llama"}, Case{LlamaArchitecture::kQwen2, 0, "qwen2"},
                       Case{LlamaArchitecture::kQwen3, 0, "qwen3"}, Case{LlamaArchitecture::kMistral, 4, "mistral"}}) {
    auto model = tiny_model(21, c.architecture, c.window);
    const auto plain = generate(*model, kPrompts, GenerateOptions().max_new_tokens(9).use_cache(false));
    const auto cached = generate(*model, kPrompts, GenerateOptions().max_new_tokens(9));
    EXPECT_TRUE(cached.sequences.equal(plain.sequences)) << c.name;
    for (size_t b = 0; b < kPrompts.size(); ++b) {
      EXPECT_EQ(cached.completions[b], manual_greedy(*model, kPrompts[b], 9, /*eos=*/-1)) << c.name << " row " << b;
    }
    // A stop token that ends some rows early: the finished rows' masked fillers change nothing for the others.
    const int64_t stop = plain.sequences[0][2].item<int64_t>();
    const auto o = GenerateOptions().max_new_tokens(9).eos_token_ids({stop}).pad_token_id(0);
    const auto stopped_plain = generate(*model, kPrompts, GenerateOptions(o).use_cache(false));
    const auto stopped_cached = generate(*model, kPrompts, o);
    EXPECT_TRUE(stopped_cached.sequences.equal(stopped_plain.sequences)) << c.name;
    EXPECT_TRUE(stopped_cached.finished.equal(stopped_plain.finished)) << c.name;
  }
}

TEST(Generate, KVCacheSamplingDrawsTheSameTokensAsTheFullRerun) {
  auto model = tiny_model(22, LlamaArchitecture::kQwen2);
  auto sample = [&](bool cache) {
    return generate(*model, kPrompts,
                    GenerateOptions().max_new_tokens(8).temperature(1.3).top_k(10).top_p(0.9).use_cache(cache)
                        .generator(at::make_generator<at::CPUGeneratorImpl>(5)))
        .sequences;
  };
  EXPECT_TRUE(sample(true).equal(sample(false)));
}

TEST(Generate, TopPSamplesOnlyFromTheNucleus) {
  auto model = tiny_model(5);
  std::vector<std::vector<int64_t>> prompts(64, std::vector<int64_t>{1, 2, 3});
  const double temperature = 3.0, top_p = 0.6;
  const auto out = generate(*model, prompts,
                            GenerateOptions().max_new_tokens(1).temperature(temperature).top_p(top_p).generator(
                                at::make_generator<at::CPUGeneratorImpl>(13)));
  // The nucleus, in float64 from the definition: the most likely tokens, in order, until their mass reaches top_p.
  torch::NoGradGuard no_grad;
  const auto logits = model->forward(torch::tensor(prompts[0], torch::kLong).unsqueeze(0)).select(1, -1)[0];
  const auto probs = (logits.to(torch::kDouble) / temperature).softmax(-1);
  const auto order = std::get<1>(probs.sort(-1, /*descending=*/true));
  std::vector<int64_t> nucleus;
  double mass = 0.0;
  for (int64_t i = 0; i < kVocab && mass < top_p; ++i) {
    const int64_t id = order[i].item<int64_t>();
    nucleus.push_back(id);
    mass += probs[id].item<double>();
  }
  ASSERT_GE(nucleus.size(), 2u) << "pick another temperature: the nucleus is a single token";
  ASSERT_LT(nucleus.size(), static_cast<size_t>(kVocab) / 2);
  std::set<int64_t> drawn;
  for (int64_t b = 0; b < 64; ++b) drawn.insert(out.sequences[b][0].item<int64_t>());
  for (const int64_t id : drawn) {
    EXPECT_NE(std::find(nucleus.begin(), nucleus.end(), id), nucleus.end()) << "token " << id << " is outside";
  }
  EXPECT_GE(drawn.size(), 2u);
  // A top_p so small that only the most likely token is left is greedy.
  const auto tiny_p = generate(*model, kPrompts, GenerateOptions().max_new_tokens(6).temperature(1.0).top_p(1e-6));
  EXPECT_TRUE(tiny_p.sequences.equal(generate(*model, kPrompts, GenerateOptions().max_new_tokens(6)).sequences));
}

TEST(Generate, EosStopsARowAndPadsAfterIt) {
  auto model = tiny_model(2);
  const auto free_run = manual_greedy(*model, kPrompts[0], 5, /*eos=*/-1);
  // Make the token greedy emits second an EOS: row 0 stops after two tokens, the EOS not in its completion.
  const int64_t eos = free_run[1];
  ASSERT_NE(free_run[0], eos) << "pick another seed: the first token already equals the second";
  const auto out = generate(*model, kPrompts, GenerateOptions().max_new_tokens(5).eos_token_ids({eos}).pad_token_id(0));
  EXPECT_EQ(out.completions[0], (std::vector<int64_t>{free_run[0]}));
  EXPECT_EQ(out.lengths[0].item<int64_t>(), 2);
  EXPECT_TRUE(out.finished[0].item<bool>());
  for (int64_t t = 2; t < out.sequences.size(1); ++t) EXPECT_EQ(out.sequences[0][t].item<int64_t>(), 0);
  for (size_t b = 0; b < kPrompts.size(); ++b) {
    EXPECT_EQ(out.completions[b], [&] {
      auto expected = manual_greedy(*model, kPrompts[b], 5, eos);
      if (!expected.empty() && expected.back() == eos) expected.pop_back();
      return expected;
    }()) << "row " << b;
  }
}

TEST(Generate, StopsEarlyWhenEveryRowHasEnded) {
  auto model = tiny_model(3);
  const auto first = manual_greedy(*model, {3}, 1, -1);
  const auto out = generate(*model, {{3}, {3}}, GenerateOptions().max_new_tokens(10).eos_token_ids({first[0]}));
  EXPECT_EQ(out.sequences.size(1), 1);
  EXPECT_TRUE(out.finished.all().item<bool>());
  EXPECT_TRUE(out.completions[0].empty());
}

TEST(Generate, SamplingIsReproducibleWithAGeneratorAndTopOneIsGreedy) {
  auto model = tiny_model(4);
  auto sample = [&](uint64_t seed) {
    return generate(*model, kPrompts,
                    GenerateOptions().max_new_tokens(6).temperature(1.5).generator(
                        at::make_generator<at::CPUGeneratorImpl>(seed)))
        .sequences;
  };
  EXPECT_TRUE(sample(7).equal(sample(7)));
  EXPECT_FALSE(sample(7).equal(sample(8)));
  const auto greedy = generate(*model, kPrompts, GenerateOptions().max_new_tokens(6));
  const auto top1 = generate(*model, kPrompts, GenerateOptions().max_new_tokens(6).temperature(2.0).top_k(1));
  EXPECT_TRUE(top1.sequences.equal(greedy.sequences));
}

TEST(Generate, TopKSamplesOnlyTheKMostLikelyTokens) {
  auto model = tiny_model(5);
  std::vector<std::vector<int64_t>> prompts(64, std::vector<int64_t>{1, 2, 3});
  const auto out = generate(*model, prompts,
                            GenerateOptions().max_new_tokens(1).temperature(5.0).top_k(3).generator(
                                at::make_generator<at::CPUGeneratorImpl>(11)));
  torch::NoGradGuard no_grad;
  const auto logits = model->forward(torch::tensor(prompts[0], torch::kLong).unsqueeze(0)).select(1, -1)[0];
  const auto top = std::get<1>(logits.topk(3));
  bool all_in = true, several = false;
  const int64_t first = out.sequences[0][0].item<int64_t>();
  for (int64_t b = 0; b < 64; ++b) {
    const int64_t id = out.sequences[b][0].item<int64_t>();
    all_in = all_in && top.eq(id).any().item<bool>();
    several = several || id != first;
  }
  EXPECT_TRUE(all_in);
  EXPECT_TRUE(several) << "temperature 5 over three tokens should not always draw the same one";
}

TEST(Generate, BadArgumentsAreNamed) {
  auto model = tiny_model(6);
  auto ids = torch::tensor({{1, 2, 3}}, torch::kLong);
  expect_error([&] { generate(*model, ids, {}, GenerateOptions().max_new_tokens(0)); },
               "max_new_tokens must be >= 1, got 0");
  expect_error([&] { generate(*model, ids, {}, GenerateOptions().temperature(-1.0)); },
               "temperature must be finite and >= 0");
  expect_error([&] { generate(*model, ids, {}, GenerateOptions().temperature(1.0).top_k(24)); },
               "top_k must be in [0, vocab_size 23]");
  expect_error([&] { generate(*model, ids, {}, GenerateOptions().eos_token_ids({2, 23})); },
               "eos_token_ids[1] must be in [0, vocab_size 23), got 23");
  expect_error([&] { generate(*model, ids, {}, GenerateOptions().pad_token_id(-1)); },
               "pad_token_id must be in [0, vocab_size 23), got -1");
  expect_error([&] { generate(*model, torch::tensor({1, 2}, torch::kLong)); }, "input_ids must have shape [B, P]");
  expect_error([&] { generate(*model, torch::ones({1, 2})); }, "input_ids must be integers, got dtype Float");
  expect_error([&] { generate(*model, torch::tensor({{1, 99}}, torch::kLong)); },
               "input_ids must be in [0, vocab_size 23) on real tokens, got values in [1, 99]");
  expect_error([&] { generate(*model, ids, torch::ones({1, 2}, torch::kLong)); },
               "attention_mask must have shape [B, P] matching input_ids [1, 3], got [1, 2]");
  expect_error([&] { generate(*model, ids, torch::tensor({{1, 0, 1}}, torch::kLong)); },
               "attention_mask must be right-padded (each row 1 on its first tokens, then 0) or left-padded");
  expect_error([&] { generate(*model, ids, {}, GenerateOptions().temperature(1.0).top_p(0.0)); },
               "top_p must be in (0, 1] (1 = off), got 0");
  expect_error([&] { generate(*model, ids, {}, GenerateOptions().temperature(1.0).top_p(1.5)); },
               "top_p must be in (0, 1] (1 = off), got 1.5");
  expect_error([&] { generate(*model, ids, torch::tensor({{0, 0, 0}}, torch::kLong)); },
               "every prompt must have at least one real token (attention_mask row 0 is all 0)");
  expect_error([&] { generate(*model, ids, torch::tensor({{1, 2, 0}}, torch::kLong)); },
               "attention_mask must hold only 0 and 1");
  expect_error([&] { generate(*model, std::vector<std::vector<int64_t>>{}); }, "prompts must hold at least one prompt");
  expect_error([&] { generate(*model, std::vector<std::vector<int64_t>>{{1}, {}}); }, "prompts[1] is empty");
}

}  // namespace
}  // namespace prefopt
