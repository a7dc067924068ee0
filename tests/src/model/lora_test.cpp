// Tests of LoRA: PEFT's names and shapes, the base model frozen and exactly restored with the adapters off, the
// update against a float64 reference written from the definition (W x + scaling B A x), gradients reaching only the
// adapter (also through activation checkpointing), modules_to_save, dropout in train mode only, save / load /
// merge round trips, adapter_config.json as PEFT writes it, and the errors that name the file and field. Parity
// with PEFT itself is tests/python/test_lora_peft.py.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include <prefopt/model/llama.h>
#include <prefopt/model/lora.h>
#include <prefopt/model/safetensors.h>
#include "support/expect_error.h"
#include "support/temp_tree.h"

namespace prefopt {
namespace {

using prefopt::testing::expect_error;

LlamaForCausalLM tiny(uint64_t seed, bool tied = false) {
  torch::manual_seed(seed);
  LlamaForCausalLM model(LlamaConfig()
                             .architecture(LlamaArchitecture::kQwen2)
                             .vocab_size(29)
                             .hidden_size(16)
                             .intermediate_size(24)
                             .num_hidden_layers(2)
                             .num_attention_heads(4)
                             .num_key_value_heads(2)
                             .tie_word_embeddings(tied));
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0.0, 0.3);
  return model;
}

const torch::Tensor& ids() {
  static const torch::Tensor t = torch::tensor({{3, 14, 15, 9, 2, 6}, {5, 8, 9, 7, 9, 1}}, torch::kLong);
  return t;
}

// PEFT's adapter_config.json for LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"],
// modules_to_save=["lm_head"]) as peft 0.21.2 writes it (the fields prefopt reads and those it must accept).
const char* kPeftConfig = R"({
  "alora_invocation_tokens": null, "alpha_pattern": {}, "arrow_config": null,
  "auto_mapping": {"base_model_class": "LlamaForCausalLM", "parent_library": "transformers.models.llama.modeling_llama"},
  "base_model_name_or_path": null, "bias": "none", "corda_config": null, "ensure_weight_tying": false,
  "eva_config": null, "exclude_modules": null, "fan_in_fan_out": false, "inference_mode": true,
  "init_lora_weights": true, "kasa_config": null, "layer_replication": null, "layers_pattern": null,
  "layers_to_transform": null, "loftq_config": {}, "lora_alpha": 8, "lora_bias": false, "lora_dropout": 0.0,
  "lora_ga_config": null, "megatron_config": null, "megatron_core": "megatron.core", "modules_to_save": ["lm_head"],
  "monteclora_config": null, "peft_type": "LORA", "peft_version": "0.21.2", "qalora_group_size": 16, "r": 4,
  "rank_pattern": {}, "revision": null, "target_modules": ["down_proj", "q_proj"], "target_parameters": null,
  "task_type": null, "trainable_token_indices": null, "use_bdlora": null, "use_dora": false, "use_qalora": false,
  "use_rslora": false, "velora_config": null
})";

TEST(Lora, PeftNamesShapesAndAFrozenBase) {
  auto model = tiny(1);
  LoraAdapter lora(model, LoraConfig().r(4).alpha(8).target_modules({"q_proj", "down_proj"}));
  for (const auto& p : model->parameters()) EXPECT_FALSE(p.requires_grad());
  const auto named = lora.named_parameters();
  ASSERT_EQ(named.size(), 8u);  // 2 layers x 2 modules x (A, B)
  std::map<std::string, torch::Tensor> by_name(named.begin(), named.end());
  EXPECT_EQ(by_name.at("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").sizes(),
            (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(by_name.at("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").sizes(),
            (std::vector<int64_t>{16, 4}));
  for (const auto& [name, t] : named) EXPECT_TRUE(t.requires_grad()) << name;
  // The default initialisation starts at zero: B is 0 and A is Kaiming-uniform within 1 / sqrt(fan_in).
  EXPECT_EQ(by_name.at("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").abs().max().item<double>(), 0.0);
  const auto& a = by_name.at("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
  EXPECT_LE(a.abs().max().item<double>(), 1.0 / std::sqrt(24.0));
  EXPECT_GT(a.abs().max().item<double>(), 0.5 / std::sqrt(24.0));
  EXPECT_EQ(LoraConfig().target_modules({"all-linear"}).resolved_targets().size(), 7u);
  // Module paths (as PEFT writes an expanded "all-linear") target that module only, matched by PEFT's suffix rule.
  auto other = tiny(1);
  LoraAdapter one(other, LoraConfig().r(2).target_modules({"model.layers.1.mlp.up_proj", "layers.0.self_attn.o_proj"}));
  std::vector<std::string> names;
  for (const auto& [name, t] : one.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight",
                                              "base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight",
                                              "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight",
                                              "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"}));
  expect_error([] { LoraAdapter(tiny(1), LoraConfig().target_modules({"model.layers.7.mlp.up_proj"})); },
               "lora.target_modules: 'model.layers.7.mlp.up_proj' matches no projection of this model (2 layers)");
  EXPECT_DOUBLE_EQ(LoraConfig().r(16).alpha(32).scaling(), 2.0);
  EXPECT_DOUBLE_EQ(LoraConfig().r(16).alpha(32).use_rslora(true).scaling(), 8.0);
}

// With the adapters off the model is bit for bit the base model (the reference TRL takes for a PEFT policy); on,
// each projection adds scaling * B A x, checked against a float64 reference built from the definition.
TEST(Lora, UpdateMatchesTheDefinitionAndAdaptersOffIsTheBaseExactly) {
  auto model = tiny(2);
  torch::NoGradGuard no_grad;
  const torch::Tensor base = model->forward(ids());
  LoraAdapter lora(model, LoraConfig().r(3).alpha(5).target_modules({"all-linear"}).init("random"));
  const torch::Tensor with = model->forward(ids());
  EXPECT_GT((with - base).abs().max().item<double>(), 1e-3) << "the random init must change the logits";
  {
    AdaptersDisabled off(*model);
    EXPECT_TRUE(model->forward(ids()).equal(base));
  }
  EXPECT_TRUE(model->adapters_enabled());

  // Reference: a float64 copy of the model whose weights are W + (alpha / r) B A.
  auto merged = tiny(2);
  merged->to(torch::kDouble);
  std::map<std::string, torch::Tensor> adapter;
  for (const auto& [name, t] : lora.named_parameters()) adapter[name] = t.to(torch::kDouble);
  for (auto& item : merged->named_parameters()) {
    const std::string key = item.key();
    if (key.size() < 7 || key.substr(key.size() - 7) != ".weight") continue;
    const std::string module = key.substr(0, key.size() - 7);
    const auto a = adapter.find("base_model.model." + module + ".lora_A.weight");
    if (a == adapter.end()) continue;
    const torch::Tensor& b = adapter.at("base_model.model." + module + ".lora_B.weight");
    item.value().add_(b.matmul(a->second) * (5.0 / 3.0));
  }
  const torch::Tensor expected = merged->forward(ids());
  EXPECT_LT((with.to(torch::kDouble) - expected).abs().max().item<double>(), 1e-4);
}

TEST(Lora, GradientsReachOnlyTheAdapterAlsoThroughCheckpointing) {
  auto model = tiny(3);
  LoraAdapter lora(model, LoraConfig().r(2).target_modules({"q_proj", "v_proj", "up_proj"}).init("random"));
  model->train();
  std::vector<torch::Tensor> plain;
  for (const bool checkpointing : {false, true}) {
    model->set_gradient_checkpointing(checkpointing);
    for (auto& p : lora.parameters()) p.mutable_grad() = torch::Tensor();
    model->forward(ids()).log_softmax(-1).select(-1, 3).sum().backward();
    for (const auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
    std::vector<torch::Tensor> grads;
    for (const auto& p : lora.parameters()) {
      ASSERT_TRUE(p.grad().defined()) << "checkpointing " << checkpointing;
      grads.push_back(p.grad().clone());
    }
    if (!checkpointing) {
      plain = grads;
    } else {
      for (size_t i = 0; i < grads.size(); ++i) {
        const double scale = plain[i].abs().max().item<double>();
        EXPECT_LE((grads[i] - plain[i]).abs().max().item<double>(), 1e-6 * scale + 1e-12) << "tensor " << i;
      }
    }
  }
}

TEST(Lora, DropoutOnlyInTrainMode) {
  auto model = tiny(4);
  LoraAdapter lora(model, LoraConfig().r(4).dropout(0.5).target_modules({"all-linear"}).init("random"));
  torch::NoGradGuard no_grad;
  model->train();
  EXPECT_FALSE(model->forward(ids()).equal(model->forward(ids())));
  model->eval();
  EXPECT_TRUE(model->forward(ids()).equal(model->forward(ids())));
}

TEST(Lora, ModulesToSaveTrainACopyAndLeaveTheOriginalToTheBase) {
  for (const bool tied : {false, true}) {
    auto model = tiny(5, tied);
    torch::NoGradGuard no_grad;
    const torch::Tensor base = model->forward(ids());
    LoraAdapter lora(model, LoraConfig().r(2).modules_to_save({"lm_head", "embed_tokens"}));
    std::map<std::string, torch::Tensor> named;
    for (const auto& [name, t] : lora.named_parameters()) named[name] = t;
    ASSERT_TRUE(named.count("base_model.model.lm_head.weight"));
    ASSERT_TRUE(named.count("base_model.model.model.embed_tokens.weight"));
    EXPECT_TRUE(model->forward(ids()).equal(base));  // copies start equal, B starts at zero
    named.at("base_model.model.lm_head.weight").add_(0.5);
    named.at("base_model.model.model.embed_tokens.weight").mul_(2.0);
    EXPECT_FALSE(model->forward(ids()).equal(base));
    AdaptersDisabled off(*model);
    EXPECT_TRUE(model->forward(ids()).equal(base)) << "tied " << tied;
  }
}

TEST(Lora, SaveLoadAndMergeRoundTrips) {
  prefopt::testing::TempTree dir;
  auto model = tiny(6);
  save_llama(*model, dir / "base");
  LoraAdapter lora(model, LoraConfig().r(3).alpha(6).target_modules({"k_proj", "o_proj", "gate_proj"})
                              .modules_to_save({"lm_head"}).init("random"));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : lora.parameters()) p.add_(0.01);
  }
  lora.save(dir / "adapter");
  lora.save_merged(dir / "merged");
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model->forward(ids());

  auto reloaded = load_llama(dir / "base");
  auto again = LoraAdapter::load(reloaded, dir / "adapter");
  EXPECT_TRUE(reloaded->forward(ids()).equal(expected));
  EXPECT_EQ(again->config().r(), 3);
  EXPECT_EQ(again->config().modules_to_save(), std::vector<std::string>{"lm_head"});

  auto merged = load_llama(dir / "merged");
  EXPECT_LT((merged->forward(ids()) - expected).abs().max().item<double>(), 1e-4);
  EXPECT_EQ(merged->named_parameters().size(), model->named_parameters().size());

  // bf16 on disk when asked.
  lora.save(dir / "adapter16", torch::kBFloat16);
  EXPECT_EQ(safetensors::File(dir / "adapter16/adapter_model.safetensors")
                .entry("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight")
                .dtype,
            "BF16");
}

TEST(Lora, ReadsPeftsConfigAndRefusesWhatItDoesNotImplement) {
  const LoraConfig c = LoraConfig::from_json_string(kPeftConfig);
  EXPECT_EQ(c.r(), 4);
  EXPECT_DOUBLE_EQ(c.alpha(), 8.0);
  EXPECT_EQ(c.resolved_targets(), (std::vector<std::string>{"down_proj", "q_proj"}));
  EXPECT_EQ(c.modules_to_save(), std::vector<std::string>{"lm_head"});
  EXPECT_EQ(c.init(), "default");
  const LoraConfig back = LoraConfig::from_json_string(c.to_json_string("Qwen/Qwen2.5-0.5B"));
  EXPECT_EQ(back.resolved_targets(), c.resolved_targets());
  EXPECT_EQ(back.modules_to_save(), c.modules_to_save());
  EXPECT_DOUBLE_EQ(back.scaling(), c.scaling());

  const auto with = [](const std::string& key, const std::string& value) {
    std::string text = kPeftConfig;
    const size_t colon = text.find(':', text.find("\"" + key + "\":"));
    size_t begin = text.find_first_not_of(' ', colon + 1), end = 0;
    if (text[begin] == '[' || text[begin] == '{') {
      end = text.find(text[begin] == '[' ? ']' : '}', begin) + 1;
    } else {
      end = text.find_first_of(",}", begin);
    }
    text = text.substr(0, colon + 1) + " " + value + text.substr(end);
    return [text] { LoraConfig::from_json_string(text); };
  };
  expect_error(with("use_dora", "true"), "adapter_config.json: use_dora is true; only false is supported");
  expect_error(with("bias", "\"all\""), "adapter_config.json: bias is \"all\"; only \"none\" is supported");
  expect_error(with("peft_type", "\"IA3\""), "adapter_config.json: peft_type must be \"LORA\", got \"IA3\"");
  expect_error(with("task_type", "\"SEQ_CLS\""), "task_type is \"SEQ_CLS\"; only \"CAUSAL_LM\" adapters");
  expect_error(with("target_modules", "\".*proj\""), "target_modules is the pattern \".*proj\"");
  expect_error(with("init_lora_weights", "\"pissa\""), "init_lora_weights is \"pissa\"; supported: true, false");
  expect_error(with("r", "0"), "adapter_config.json: lora.r must be > 0, got 0");
  expect_error(with("layers_to_transform", "[0]"), "layers_to_transform is [0]; not supported");
  expect_error([] { LoraConfig().target_modules({"qkv_proj"}).validate(); },
               "lora.target_modules: unknown module 'qkv_proj'");
  expect_error([] { LoraConfig().modules_to_save({"score"}).validate(); }, "unsupported module 'score'");
  expect_error([] { LoraConfig().dropout(1.0).validate(); }, "lora.dropout must be in [0, 1), got 1");
}

TEST(Lora, LoadErrorsNameTheFileAndTheTensor) {
  prefopt::testing::TempTree dir;
  auto model = tiny(7);
  LoraAdapter lora(model, LoraConfig().r(2).target_modules({"q_proj"}));
  lora.save(dir / "a");
  auto other = tiny(7);
  LoraAdapter wider(other, LoraConfig().r(4).target_modules({"q_proj"}));
  expect_error([&] { wider.load_weights(dir / "a"); }, "describes another adapter (r 2");
  auto third = tiny(7);
  LoraAdapter more(third, LoraConfig().r(2).target_modules({"q_proj"}));
  safetensors::save_file(dir / "a/adapter_model.safetensors",
                         {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", torch::zeros({2, 16})}});
  expect_error([&] { more.load_weights(dir / "a"); },
               "adapter_model.safetensors has no tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight'");
  expect_error([&] { LoraAdapter::load(tiny(7), dir / "missing"); }, "cannot open the adapter config");
  auto tied = tiny(8, /*tied=*/true);
  LoraAdapter head(tied, LoraConfig().modules_to_save({"lm_head"}));
  expect_error([&] { head.save_merged(dir / "m"); }, "ties lm_head to embed_tokens");
}

}  // namespace
}  // namespace prefopt
