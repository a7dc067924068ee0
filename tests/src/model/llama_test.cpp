// Tests of the Llama-family model: Hugging Face parameter names, logits against a float64 reference written
// here from the definitions (per-head loops, explicit masked softmax, rotation of each frequency pair), padding
// and causality, hidden states and the lm_head weight, checkpoint round trips (single file and sharded), the
// checkpoint and input errors, clone and initialisation. Parity with transformers itself is
// tests/python/test_llama_parity.py.
#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/model/llama.h>
#include <prefopt/model/safetensors.h>
#include "support/expect_error.h"
#include "support/temp_tree.h"

namespace prefopt {
namespace {

using prefopt::testing::expect_error;

LlamaConfig tiny(LlamaArchitecture arch = LlamaArchitecture::kLlama, bool tied = false) {
  return LlamaConfig()
      .architecture(arch)
      .vocab_size(37)
      .hidden_size(32)
      .intermediate_size(48)
      .num_hidden_layers(2)
      .num_attention_heads(4)
      .num_key_value_heads(2)
      .tie_word_embeddings(tied)
      .max_position_embeddings(64);
}

// Parameters drawn large enough that every part of the network moves the logits.
void randomize(LlamaForCausalLMImpl& model, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    const bool norm = item.key().find("norm") != std::string::npos;
    if (norm) {
      item.value().uniform_(0.5, 1.5);
    } else {
      item.value().normal_(0.0, 0.3);
    }
  }
}

torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return w * x / torch::sqrt(x.pow(2).mean(-1, true) + eps);
}

// Rotates each pair (x[i], x[i + d/2]) of every position by position * inv_freq[i].
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& inv_freq) {
  const int64_t T = x.size(0), half = x.size(1) / 2;
  torch::Tensor out = x.clone();
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = t * inv_freq[i].item<double>();
      const auto x1 = x[t][i], x2 = x[t][i + half];
      out[t][i] = x1 * std::cos(a) - x2 * std::sin(a);
      out[t][i + half] = x2 * std::cos(a) + x1 * std::sin(a);
    }
  }
  return out;
}

// Float64 logits of one sequence from the definitions; keys[j] false hides key j from every query.
torch::Tensor reference_logits(const LlamaForCausalLMImpl& model, const torch::Tensor& ids, const torch::Tensor& keys) {
  const LlamaConfig& c = model.config();
  std::map<std::string, torch::Tensor> p;
  for (const auto& item : model.named_parameters()) p[item.key()] = item.value().detach().to(torch::kDouble);
  const int64_t T = ids.size(0), hd = c.resolved_head_dim(), H = c.num_attention_heads();
  const int64_t groups = H / c.num_key_value_heads();
  torch::Tensor inv_freq = torch::empty({hd / 2}, torch::kDouble);
  for (int64_t i = 0; i < hd / 2; ++i) inv_freq[i] = std::pow(c.rope_theta(), -2.0 * i / hd);
  const RopeScaling& s = c.rope_scaling();
  if (s.rope_type() == RopeType::kLlama3) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double f = inv_freq[i].item<double>(), wavelen = 2 * 3.14159265358979323846 / f;
      const double old = s.original_max_position_embeddings();
      double g = f;
      if (wavelen > old / s.low_freq_factor()) {
        g = f / s.factor();
      } else if (wavelen >= old / s.high_freq_factor()) {
        const double smooth = (old / wavelen - s.low_freq_factor()) / (s.high_freq_factor() - s.low_freq_factor());
        g = (1 - smooth) * f / s.factor() + smooth * f;
      }
      inv_freq[i] = g;
    }
  }
  if (s.rope_type() == RopeType::kDynamic && T > c.max_position_embeddings()) {
    // NTK: theta' = theta * (factor * T / M - (factor - 1))^(d / (d - 2)) for positions 0..T-1.
    const double scaled_theta =
        c.rope_theta() * std::pow(s.factor() * T / double(c.max_position_embeddings()) - (s.factor() - 1),
                                  double(hd) / double(hd - 2));
    for (int64_t i = 0; i < hd / 2; ++i) inv_freq[i] = std::pow(scaled_theta, -2.0 * i / hd);
  } else if (s.rope_type() == RopeType::kLinear) {
    inv_freq = inv_freq / s.factor();
  }
  torch::Tensor x = p.at("model.embed_tokens.weight").index_select(0, ids);
  for (int64_t l = 0; l < c.num_hidden_layers(); ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const auto lin = [&](const torch::Tensor& in, const std::string& name) {
      torch::Tensor out = in.matmul(p.at(pre + name + ".weight").t());
      if (p.count(pre + name + ".bias")) out = out + p.at(pre + name + ".bias");
      return out;
    };
    const torch::Tensor h = rms(x, p.at(pre + "input_layernorm.weight"), c.rms_norm_eps());
    const torch::Tensor q = lin(h, "self_attn.q_proj"), k = lin(h, "self_attn.k_proj"), v = lin(h, "self_attn.v_proj");
    std::vector<torch::Tensor> heads;
    const int64_t window = c.layer_sliding_window(l);
    for (int64_t n = 0; n < H; ++n) {
      const int64_t kv = n / groups;
      torch::Tensor qn = q.slice(1, n * hd, (n + 1) * hd), kn = k.slice(1, kv * hd, (kv + 1) * hd);
      if (c.qk_norm()) {  // Qwen3: each head's query and key RMS-normed over head_dim, before the rotation
        qn = rms(qn, p.at(pre + "self_attn.q_norm.weight"), c.rms_norm_eps());
        kn = rms(kn, p.at(pre + "self_attn.k_norm.weight"), c.rms_norm_eps());
      }
      qn = rope(qn, inv_freq);
      kn = rope(kn, inv_freq);
      const torch::Tensor vn = v.slice(1, kv * hd, (kv + 1) * hd);
      torch::Tensor scores = qn.matmul(kn.t()) / std::sqrt(double(hd));
      for (int64_t i = 0; i < T; ++i) {
        bool any = false;
        for (int64_t j = 0; j < T; ++j) {
          const bool outside_window = window > 0 && i - j >= window;
          if (j > i || !keys[j].item<bool>() || outside_window) {
            scores[i][j] = -INFINITY;
          } else {
            any = true;
          }
        }
        // A query that may see no key (a pad whose window holds only pads) attends to itself, as the model does.
        if (!any) scores[i][i] = qn[i].dot(kn[i]) / std::sqrt(double(hd));
      }
      heads.push_back(torch::softmax(scores, -1).matmul(vn));
    }
    x = x + lin(torch::cat(heads, 1), "self_attn.o_proj");
    const torch::Tensor m = rms(x, p.at(pre + "post_attention_layernorm.weight"), c.rms_norm_eps());
    const torch::Tensor gate = lin(m, "mlp.gate_proj");
    x = x + lin(gate * torch::sigmoid(gate) * lin(m, "mlp.up_proj"), "mlp.down_proj");
  }
  x = rms(x, p.at("model.norm.weight"), c.rms_norm_eps());
  const torch::Tensor head = c.tie_word_embeddings() ? p.at("model.embed_tokens.weight") : p.at("lm_head.weight");
  return x.matmul(head.t());
}

class LlamaTest : public ::testing::Test {
 protected:
  prefopt::testing::TempTree dir_;
};

TEST(Llama, ParameterNamesAndShapesAreHuggingFaces) {
  const LlamaForCausalLM llama(tiny());
  const auto params = llama->named_parameters();
  EXPECT_EQ(params.size(), 1u + 2 * 9 + 1 + 1);  // embed, 2 x (q k v o gate up down + 2 norms), norm, lm_head
  EXPECT_EQ(params["model.embed_tokens.weight"].sizes(), (std::vector<int64_t>{37, 32}));
  EXPECT_EQ(params["model.layers.1.self_attn.q_proj.weight"].sizes(), (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(params["model.layers.1.self_attn.k_proj.weight"].sizes(), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(params["model.layers.0.mlp.down_proj.weight"].sizes(), (std::vector<int64_t>{32, 48}));
  EXPECT_EQ(params["model.layers.0.post_attention_layernorm.weight"].sizes(), (std::vector<int64_t>{32}));
  EXPECT_EQ(params["lm_head.weight"].sizes(), (std::vector<int64_t>{37, 32}));
  EXPECT_FALSE(params.contains("model.layers.0.self_attn.q_proj.bias"));

  const LlamaForCausalLM qwen(tiny(LlamaArchitecture::kQwen2, /*tied=*/true));
  const auto qp = qwen->named_parameters();
  EXPECT_EQ(qp.size(), 1u + 2 * 12 + 1);  // q k v biases, no o bias, no lm_head
  EXPECT_EQ(qp["model.layers.0.self_attn.k_proj.bias"].sizes(), (std::vector<int64_t>{16}));
  EXPECT_FALSE(qp.contains("model.layers.0.self_attn.o_proj.bias"));
  EXPECT_FALSE(qp.contains("lm_head.weight"));
  EXPECT_TRUE(qwen->lm_head.is_empty());
}

TEST(Llama, MatchesFloat64ReferenceWithGqaBiasesRopeScalingAndPadding) {
  for (const auto arch : {LlamaArchitecture::kLlama, LlamaArchitecture::kQwen2}) {
    for (const bool tied : {false, true}) {
      LlamaConfig config = tiny(arch, tied).rope_theta(500.0);
      if (tied) {
        config.rope_scaling(RopeScaling().rope_type(RopeType::kLlama3).factor(4).low_freq_factor(1)
                                .high_freq_factor(4).original_max_position_embeddings(64));
      }
      LlamaForCausalLM model(config);
      model->to(torch::kDouble);
      randomize(*model, 7);
      const torch::Tensor ids = torch::tensor({{3, 14, 15, 9, 2, 6, 5}, {35, 8, 9, 7, 9, 0, 0}}, torch::kLong);
      const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0, 0}}, torch::kLong);
      const torch::Tensor logits = model->forward(ids, mask);
      ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 7, 37}));
      EXPECT_EQ(logits.scalar_type(), torch::kDouble);
      for (int64_t b = 0; b < 2; ++b) {
        const torch::Tensor expected = reference_logits(*model, ids[b], mask[b] != 0);
        const double err = (logits[b] - expected).abs().max().item<double>();
        EXPECT_LT(err, 1e-5) << "row " << b << " tied " << tied << " max |logit| "
                             << expected.abs().max().item<double>();
      }
    }
  }
}

// Qwen3's q/k norms, Mistral's sliding window (3 positions, shorter than the 7-token rows), Llama's
// attention_bias and mlp_bias, and dynamic / linear rope scaling, each against the float64 reference.
TEST(Llama, ArchitectureVariantsMatchFloat64Reference) {
  struct Case {
    const char* name;
    LlamaConfig config;
  };
  const std::vector<Case> cases = {
      {"qwen3", tiny(LlamaArchitecture::kQwen3)},
      {"qwen3 attention_bias, sliding layer 1",
       tiny(LlamaArchitecture::kQwen3).attention_bias(true).sliding_window(3).layer_types(
           {"full_attention", "sliding_attention"})},
      {"mistral window 3", tiny(LlamaArchitecture::kMistral).sliding_window(3)},
      {"qwen2 sliding", tiny(LlamaArchitecture::kQwen2).sliding_window(2)},
      {"llama attention_bias mlp_bias", tiny().attention_bias(true).mlp_bias(true)},
      {"llama dynamic rope past max_position_embeddings",
       tiny().max_position_embeddings(4).rope_scaling(RopeScaling().rope_type(RopeType::kDynamic).factor(3))},
      {"llama dynamic rope within max_position_embeddings",
       tiny().rope_scaling(RopeScaling().rope_type(RopeType::kDynamic).factor(3))},
      {"llama linear rope", tiny().rope_scaling(RopeScaling().rope_type(RopeType::kLinear).factor(2.5))},
  };
  for (const auto& c : cases) {
    LlamaForCausalLM model(c.config);
    model->to(torch::kDouble);
    randomize(*model, 11);
    const torch::Tensor ids = torch::tensor({{3, 14, 15, 9, 2, 6, 5}, {35, 8, 9, 7, 9, 0, 0}}, torch::kLong);
    const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0, 0}}, torch::kLong);
    const torch::Tensor logits = model->forward(ids, mask);
    for (int64_t b = 0; b < 2; ++b) {
      const torch::Tensor expected = reference_logits(*model, ids[b], mask[b] != 0);
      const torch::Tensor valid = (mask[b] != 0).unsqueeze(1);
      const double err = (logits[b] - expected).abs().masked_select(valid).max().item<double>();
      EXPECT_LT(err, 1e-5) << c.name << " row " << b;
    }
  }
  const auto params = LlamaForCausalLM(tiny(LlamaArchitecture::kQwen3))->named_parameters();
  EXPECT_EQ(params["model.layers.0.self_attn.q_norm.weight"].sizes(), (std::vector<int64_t>{8}));
  EXPECT_EQ(params["model.layers.1.self_attn.k_norm.weight"].sizes(), (std::vector<int64_t>{8}));
  EXPECT_FALSE(params.contains("model.layers.0.self_attn.q_proj.bias"));
  const auto biased = LlamaForCausalLM(tiny().attention_bias(true).mlp_bias(true))->named_parameters();
  EXPECT_TRUE(biased.contains("model.layers.0.self_attn.o_proj.bias"));
  EXPECT_TRUE(biased.contains("model.layers.0.mlp.down_proj.bias"));
}

// forward_cached over a prompt and then one token at a time gives, at every position, the logits the full
// forward gives: with left padding, a sliding window shorter than the sequence, and Qwen3's norms.
TEST(Llama, CachedForwardEqualsFullForward) {
  for (const LlamaConfig& config : {tiny(), tiny(LlamaArchitecture::kMistral).sliding_window(3),
                                    tiny(LlamaArchitecture::kQwen3)}) {
    LlamaForCausalLM model(config);
    model->to(torch::kDouble);
    randomize(*model, 12);
    model->eval();
    torch::NoGradGuard no_grad;
    // Row 1 is left-padded by two; its positions count from its first real token.
    const torch::Tensor ids = torch::tensor({{3, 14, 15, 9, 2, 6, 5, 1}, {0, 0, 8, 9, 7, 9, 4, 30}}, torch::kLong);
    const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1, 1, 1}}, torch::kLong);
    const torch::Tensor positions = (mask.cumsum(1) - 1).clamp_min(0);
    const torch::Tensor full = model->forward(ids, mask, positions);
    KVCache cache = model->new_cache(2, 10);
    const int64_t prompt = 5;
    std::vector<torch::Tensor> pieces = {
        model->forward_cached(ids.slice(1, 0, prompt), mask.slice(1, 0, prompt), positions.slice(1, 0, prompt), cache)};
    EXPECT_EQ(cache.length, prompt);
    for (int64_t t = prompt; t < 8; ++t) {
      pieces.push_back(model->forward_cached(ids.slice(1, t, t + 1), mask.slice(1, t, t + 1),
                                             positions.slice(1, t, t + 1), cache));
    }
    const torch::Tensor cached = torch::cat(pieces, 1);
    const torch::Tensor valid = (mask != 0).unsqueeze(-1);
    EXPECT_LT((cached - full).abs().masked_select(valid).max().item<double>(), 1e-10)
        << config.architecture_name() << " window " << config.sliding_window();
  }
  LlamaForCausalLM model(tiny());
  KVCache cache = model->new_cache(1, 3);
  expect_error([&] { model->forward_cached(torch::tensor({{1}}, torch::kLong), {}, {}, cache); },
               "forward_cached records no gradient; call it under torch::NoGradGuard");
  torch::NoGradGuard no_grad;
  expect_error([&] { model->forward_cached(torch::tensor({{1, 2, 3, 4}}, torch::kLong), {}, {}, cache); },
               "the KV cache holds 3 positions; 0 are filled and 4 more do not fit");
  expect_error([&] { model->forward_cached(torch::tensor({{1}, {2}}, torch::kLong), {}, {}, cache); },
               "the KV cache holds 1 rows but input_ids has 2");
}

// Activation checkpointing changes memory, not math: the loss and every parameter's gradient equal the plain
// run's (fp32, 1e-6 relative), also when the first layer's input needs no gradient (frozen embeddings, as
// under LoRA) and with sliding windows and padding; the global random stream is left where the plain run leaves it.
TEST(Llama, GradientCheckpointingGivesTheSameGradients) {
  for (const bool freeze_embeddings : {false, true}) {
    LlamaForCausalLM model(tiny(LlamaArchitecture::kQwen3).sliding_window(3).layer_types(
        {"sliding_attention", "full_attention"}));
    randomize(*model, 13);
    if (freeze_embeddings) model->model->embed_tokens->weight.set_requires_grad(false);
    const torch::Tensor ids = torch::tensor({{3, 14, 15, 9, 2, 6, 5}, {35, 8, 9, 7, 9, 0, 0}}, torch::kLong);
    const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0, 0}}, torch::kLong);
    auto run = [&](bool checkpointing) {
      model->set_gradient_checkpointing(checkpointing);
      model->train();
      model->zero_grad();
      torch::manual_seed(99);
      const torch::Tensor loss = model->forward(ids, mask).log_softmax(-1).select(-1, 4).mul(mask).sum();
      loss.backward();
      std::map<std::string, torch::Tensor> grads;
      for (const auto& item : model->named_parameters()) {
        if (item.value().grad().defined()) grads[item.key()] = item.value().grad().clone();
      }
      const double next_random = torch::rand({1}).item<double>();
      return std::make_tuple(loss.item<double>(), grads, next_random);
    };
    const auto [loss_plain, grads_plain, random_plain] = run(false);
    const auto [loss_ckpt, grads_ckpt, random_ckpt] = run(true);
    EXPECT_NEAR(loss_ckpt, loss_plain, 1e-6 * std::abs(loss_plain));
    EXPECT_EQ(random_ckpt, random_plain);
    ASSERT_EQ(grads_ckpt.size(), grads_plain.size());
    EXPECT_EQ(grads_plain.count("model.embed_tokens.weight"), freeze_embeddings ? 0u : 1u);
    for (const auto& [name, g] : grads_plain) {
      ASSERT_TRUE(grads_ckpt.count(name)) << name;
      const double scale = g.abs().max().item<double>();
      EXPECT_LE((grads_ckpt.at(name) - g).abs().max().item<double>(), 1e-6 * scale + 1e-12) << name;
    }
  }
  // Without gradients (evaluation) checkpointing is simply off.
  LlamaForCausalLM model(tiny());
  model->set_gradient_checkpointing(true);
  EXPECT_TRUE(model->gradient_checkpointing());
  torch::NoGradGuard no_grad;
  EXPECT_EQ(model->forward(torch::tensor({{1, 2}}, torch::kLong)).sizes(), (std::vector<int64_t>{1, 2, 37}));
}

TEST(Llama, CausalityAndPaddingInvariance) {
  LlamaForCausalLM model(tiny(LlamaArchitecture::kQwen2));
  randomize(*model, 1);
  torch::NoGradGuard no_grad;
  const torch::Tensor a = torch::tensor({{1, 2, 3, 4, 5, 6}}, torch::kLong);
  const torch::Tensor b = torch::tensor({{1, 2, 3, 30, 31, 32}}, torch::kLong);
  const torch::Tensor la = model->forward(a), lb = model->forward(b);
  EXPECT_TRUE(torch::allclose(la.slice(1, 0, 3), lb.slice(1, 0, 3), 1e-6, 1e-6)) << "later tokens leak backwards";
  EXPECT_FALSE(torch::allclose(la.slice(1, 3), lb.slice(1, 3)));

  // Right padding: the real positions of a padded row equal the unpadded sequence's logits.
  const torch::Tensor short_ids = torch::tensor({{7, 8, 9, 10}}, torch::kLong);
  const torch::Tensor batch = torch::tensor({{7, 8, 9, 10, 0, 0}, {1, 2, 3, 4, 5, 6}}, torch::kLong);
  const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}}, torch::kBool);
  const torch::Tensor padded = model->forward(batch, mask);
  EXPECT_TRUE(torch::allclose(padded[0].slice(0, 0, 4), model->forward(short_ids)[0], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(padded[1], la[0], 1e-5, 1e-5));
  EXPECT_TRUE(torch::isfinite(padded).all().item<bool>());

  // Left padding with matching position ids: same logits at the real positions, and no NaN at the pads.
  const torch::Tensor left = torch::tensor({{0, 0, 7, 8, 9, 10}}, torch::kLong);
  const torch::Tensor left_mask = torch::tensor({{0, 0, 1, 1, 1, 1}}, torch::kLong);
  const torch::Tensor positions = torch::tensor({{0, 0, 0, 1, 2, 3}}, torch::kLong);
  const torch::Tensor lp = model->forward(left, left_mask, positions);
  EXPECT_TRUE(torch::isfinite(lp).all().item<bool>());
  EXPECT_TRUE(torch::allclose(lp[0].slice(0, 2), model->forward(short_ids)[0], 1e-5, 1e-5));
  // A mask of all ones takes the plain causal path and gives the same numbers as no mask.
  EXPECT_TRUE(torch::allclose(model->forward(a, torch::ones({1, 6}, torch::kLong)), la, 1e-6, 1e-6));
}

TEST(Llama, HiddenStatesLmHeadAndGradients) {
  for (const bool tied : {false, true}) {
    LlamaForCausalLM model(tiny(LlamaArchitecture::kLlama, tied));
    randomize(*model, 2);
    const torch::Tensor ids = torch::tensor({{5, 6, 7}, {8, 9, 10}}, torch::kLong);
    const torch::Tensor hidden = model->hidden_states(ids);
    EXPECT_EQ(hidden.sizes(), (std::vector<int64_t>{2, 3, 32}));
    const torch::Tensor weight = model->lm_head_weight();
    EXPECT_EQ(weight.sizes(), (std::vector<int64_t>{37, 32}));
    if (tied) {
      EXPECT_TRUE(weight.is_same(model->model->embed_tokens->weight));
    }
    const torch::Tensor logits = model->forward(ids);
    EXPECT_TRUE(torch::allclose(logits, hidden.matmul(weight.t()), 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(logits, model->logits(hidden), 1e-6, 1e-6));
    // A loss on hidden @ lm_head_weight reaches every parameter.
    model->zero_grad();
    hidden.matmul(model->lm_head_weight().t()).logsumexp(-1).sum().backward();
    for (const auto& item : model->named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0) << item.key();
    }
  }
}

TEST(Llama, LowPrecisionForward) {
  LlamaForCausalLM model(tiny(LlamaArchitecture::kQwen2));
  randomize(*model, 3);
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = torch::tensor({{1, 2, 3, 4, 5}}, torch::kLong);
  const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 0}}, torch::kLong);
  const torch::Tensor full = model->forward(ids, mask);
  for (const auto dtype : {torch::kBFloat16, torch::kHalf}) {
    auto copy = std::dynamic_pointer_cast<LlamaForCausalLMImpl>(model->clone());
    copy->to(dtype);
    const torch::Tensor low = copy->forward(ids, mask);
    EXPECT_EQ(low.scalar_type(), dtype);
    const double scale = full.abs().max().item<double>();
    EXPECT_LT((low.to(torch::kFloat) - full).abs().max().item<double>(), 0.1 * scale) << dtype;
  }
}

TEST(Llama, CloneIsDeep) {
  LlamaForCausalLM model(tiny(LlamaArchitecture::kLlama, /*tied=*/true));
  randomize(*model, 4);
  auto copy = std::dynamic_pointer_cast<LlamaForCausalLMImpl>(model->clone());
  ASSERT_TRUE(copy);
  const torch::Tensor ids = torch::tensor({{1, 2, 3}}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(copy->forward(ids), model->forward(ids)));
  EXPECT_TRUE(copy->lm_head_weight().is_same(copy->model->embed_tokens->weight));
  copy->model->embed_tokens->weight.add_(1.0);
  EXPECT_FALSE(torch::equal(copy->forward(ids), model->forward(ids)));
  // The layers the copy runs are its own, not the original's.
  const auto* mine = copy->model->layers[0]->as<LlamaDecoderLayerImpl>();
  const auto* theirs = model->model->layers[0]->as<LlamaDecoderLayerImpl>();
  EXPECT_FALSE(mine->mlp->up_proj->weight.is_same(theirs->mlp->up_proj->weight));
  EXPECT_TRUE(torch::equal(mine->mlp->up_proj->weight, theirs->mlp->up_proj->weight));
}

TEST(Llama, InitialisationFollowsTransformers) {
  LlamaForCausalLM model(tiny().hidden_size(256).num_attention_heads(4).num_key_value_heads(4).intermediate_size(512)
                             .pad_token_id(3).initializer_range(0.05));
  const auto params = model->named_parameters();
  EXPECT_NEAR(params["model.layers.0.mlp.up_proj.weight"].std().item<double>(), 0.05, 0.002);
  EXPECT_NEAR(params["model.layers.0.mlp.up_proj.weight"].mean().item<double>(), 0.0, 0.002);
  EXPECT_TRUE(torch::equal(params["model.norm.weight"], torch::ones({256})));
  EXPECT_EQ(params["model.embed_tokens.weight"][3].abs().sum().item<double>(), 0.0);
  EXPECT_NEAR(params["model.embed_tokens.weight"].std().item<double>(), 0.05, 0.005);
}

TEST(Llama, BadInputs) {
  LlamaForCausalLM model(tiny());
  const torch::Tensor ids = torch::tensor({{1, 2, 3}}, torch::kLong);
  expect_error([&] { model->forward(torch::tensor({1, 2}, torch::kLong)); }, "input_ids must have shape [B, T], got [2]");
  expect_error([&] { model->forward(torch::ones({1, 2})); }, "input_ids must hold integer token ids, got dtype Float");
  expect_error([&] { model->forward(torch::tensor({{1, 37}}, torch::kLong)); },
               "input_ids must be in [0, vocab_size = 37), got values in [1, 37]");
  expect_error([&] { model->forward(torch::tensor({{-1, 2}}, torch::kLong)); }, "got values in [-1, 2]");
  expect_error([&] { model->forward(ids, torch::ones({1, 4}, torch::kLong)); },
               "attention_mask must have shape [B, T] matching input_ids [1, 3], got [1, 4]");
  expect_error([&] { model->forward(ids, torch::tensor({{1, 2, 1}}, torch::kLong)); },
               "attention_mask must hold only 0 and 1");
  expect_error([&] { model->forward(ids, torch::ones({1, 3})); }, "attention_mask must be bool or integer 0/1");
  expect_error([&] { model->forward(ids, {}, torch::zeros({2, 3}, torch::kLong)); },
               "position_ids must have shape [B, T] or [1, T]");
  expect_error([&] { model->logits(torch::ones({2, 5})); }, "hidden must have shape [..., hidden_size = 32], got [2, 5]");
  expect_error([] { LlamaForCausalLM(tiny().num_key_value_heads(3)); }, "num_key_value_heads must be > 0 and divide");
  // Empty batches and empty sequences give empty outputs.
  EXPECT_EQ(model->forward(torch::zeros({0, 3}, torch::kLong)).sizes(), (std::vector<int64_t>{0, 3, 37}));
  EXPECT_EQ(model->forward(torch::zeros({2, 0}, torch::kLong)).sizes(), (std::vector<int64_t>{2, 0, 37}));
}

TEST_F(LlamaTest, SaveLoadRoundTripInEveryDtype) {
  for (const bool tied : {false, true}) {
    LlamaForCausalLM model(tiny(LlamaArchitecture::kQwen2, tied).pad_token_id(0));
    randomize(*model, 5);
    const std::string dir = dir_ / (tied ? "tied" : "untied");
    save_llama(*model, dir);
    const safetensors::File file(dir + "/model.safetensors");
    EXPECT_EQ(file.contains("lm_head.weight"), !tied);
    EXPECT_EQ(file.metadata().at("format"), "pt");
    const LlamaConfig read_back = LlamaConfig::from_json_file(dir + "/config.json");
    EXPECT_EQ(read_back.tie_word_embeddings(), tied);
    EXPECT_EQ(read_back.torch_dtype(), "float32");

    LlamaForCausalLM loaded = load_llama(dir);
    const torch::Tensor ids = torch::tensor({{4, 5, 6, 7}}, torch::kLong);
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(loaded->forward(ids), model->forward(ids)));

    LlamaForCausalLM half = load_llama(dir, LlamaLoadOptions().dtype(torch::kBFloat16));
    EXPECT_EQ(half->lm_head_weight().scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(half->lm_head_weight(), model->lm_head_weight().to(torch::kBFloat16)));

    // A BF16 checkpoint loads into float32 exactly as its values.
    model->to(torch::kBFloat16);
    save_llama(*model, dir + "_bf16");
    EXPECT_EQ(safetensors::File(dir + "_bf16/model.safetensors").entry("model.norm.weight").dtype, "BF16");
    LlamaForCausalLM widened = load_llama(dir + "_bf16");
    EXPECT_EQ(widened->lm_head_weight().scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(widened->lm_head_weight(), model->lm_head_weight().to(torch::kFloat)));
  }
}

// Writes the model's parameters as two shards plus model.safetensors.index.json, as save_pretrained does.
void write_sharded(const LlamaForCausalLMImpl& model, const std::string& dir, const std::string& index_override = "") {
  ::mkdir(dir.c_str(), 0777);
  std::ofstream(dir + "/config.json") << model.config().to_json_string();
  std::vector<std::pair<std::string, torch::Tensor>> first, second;
  std::string map;
  for (const auto& item : model.named_parameters()) {
    const bool in_first = item.key().find("layers.1.") == std::string::npos;
    (in_first ? first : second).emplace_back(item.key(), item.value().detach());
    map += std::string(map.empty() ? "" : ", ") + "\"" + item.key() + "\": \"" +
           (in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors") + "\"";
  }
  safetensors::save_file(dir + "/model-00001-of-00002.safetensors", first);
  safetensors::save_file(dir + "/model-00002-of-00002.safetensors", second);
  std::ofstream(dir + "/model.safetensors.index.json")
      << (index_override.empty() ? "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {" + map + "}}"
                                 : index_override);
}

TEST_F(LlamaTest, ShardedCheckpoint) {
  LlamaForCausalLM model(tiny());
  randomize(*model, 6);
  write_sharded(*model, dir_ / "sharded");
  LlamaForCausalLM loaded = load_llama(dir_ / "sharded");
  const torch::Tensor ids = torch::tensor({{4, 5, 6, 7}}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(loaded->forward(ids), model->forward(ids)));

  const auto broken = [&](const std::string& name, const std::string& index) {
    write_sharded(*model, dir_ / name, index);
    return dir_ / name;
  };
  const std::string escape = broken(
      "escape", R"({"weight_map": {"lm_head.weight": "../model-00001-of-00002.safetensors"}})");
  expect_error([&] { load_llama(escape); },
               "model.safetensors.index.json: weight_map[\"lm_head.weight\"] is '../model-00001-of-00002.safetensors'; "
               "shards must be plain file names in the same folder");
  const std::string missing_shard = broken("missing", R"({"weight_map": {"lm_head.weight": "model-9.safetensors"}})");
  expect_error([&] { load_llama(missing_shard); }, "names the shard 'model-9.safetensors', which does not exist");
  const std::string wrong_shard =
      broken("wrong", R"({"weight_map": {"model.layers.1.mlp.up_proj.weight": "model-00001-of-00002.safetensors"}})");
  expect_error([&] { load_llama(wrong_shard); },
               "weight_map puts tensor 'model.layers.1.mlp.up_proj.weight' in shard 'model-00001-of-00002.safetensors', "
               "which has no such tensor");
  const std::string partial = broken("partial", R"({"weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}})");
  expect_error([&] { load_llama(partial); }, "has no tensor 'model.embed_tokens.weight'");
  const std::string not_json = broken("notjson", "{weight_map");
  expect_error([&] { load_llama(not_json); }, "model.safetensors.index.json: not valid JSON");
}

TEST_F(LlamaTest, CheckpointErrorsNameFileAndTensor) {
  LlamaForCausalLM model(tiny());
  const std::string dir = dir_ / "m";
  save_llama(*model, dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value().detach());
  const std::string weights = dir + "/model.safetensors";

  auto missing = tensors;
  missing.pop_back();  // lm_head.weight
  safetensors::save_file(weights, missing);
  expect_error([&] { load_llama(dir); }, "has no tensor 'lm_head.weight' (a parameter of LlamaForCausalLM with shape [37, 32])");

  auto reshaped = tensors;
  reshaped[0].second = torch::zeros({36, 32});
  safetensors::save_file(weights, reshaped);
  expect_error([&] { load_llama(dir); },
               "tensor 'model.embed_tokens.weight' in '" + weights +
                   "' has shape [36, 32], but the model built from config.json expects [37, 32]");

  auto extra = tensors;
  extra.emplace_back("model.layers.2.mlp.up_proj.weight", torch::zeros({2}));
  extra.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::zeros({8}));  // ignored, as transformers
  safetensors::save_file(weights, extra);
  expect_error([&] { load_llama(dir); },
               "checkpoint tensor 'model.layers.2.mlp.up_proj.weight' in '" + weights +
                   "' is not a parameter of this LlamaForCausalLM");

  auto integer = tensors;
  integer[0].second = torch::zeros({37, 32}, torch::kInt);
  safetensors::save_file(weights, integer);
  expect_error([&] { load_llama(dir); }, "has dtype I32; weights must be F32, BF16, F16 or F64");

  extra.pop_back();
  extra.pop_back();
  extra.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::zeros({8}));
  safetensors::save_file(weights, extra);
  EXPECT_NO_THROW(load_llama(dir));

  ::unlink(weights.c_str());
  expect_error([&] { load_llama(dir); }, "no model.safetensors or model.safetensors.index.json in '" + dir + "'");
  expect_error([&] { load_llama(dir_ / "nowhere"); }, "no config.json in");
}

}  // namespace
}  // namespace prefopt
