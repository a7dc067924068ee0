// Tests of LlamaConfig's config.json reading: the files transformers 5 writes for Llama, Qwen2, Qwen3 and
// Mistral, sliding-window layer types, the older rope_theta + rope_scaling layout, dynamic rope, defaults, the
// JSON written back, and one error per refused value, each naming the field.
#include <string>

#include <gtest/gtest.h>

#include <prefopt/model/llama_config.h>
#include "support/expect_error.h"

namespace prefopt {
namespace {

using prefopt::testing::expect_error;

// What transformers 5.x writes for LlamaConfig(hidden_size=64, ..., vocab_size=101).
const char* kLlamaJson = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 1, "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
  "initializer_range": 0.02, "intermediate_size": 128, "max_position_embeddings": 2048, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
  "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
  "tie_word_embeddings": false, "transformers_version": "5.24.0", "use_cache": true, "vocab_size": 101,
  "dtype": "float32"
})";

const char* kQwen2Json = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": null, "eos_token_id": [5, 7],
  "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
  "layer_types": ["full_attention", "full_attention"], "max_position_embeddings": 32768, "max_window_layers": 28,
  "model_type": "qwen2", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
  "pad_token_id": 3, "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
  "sliding_window": null, "tie_word_embeddings": true, "use_cache": true, "use_sliding_window": false,
  "vocab_size": 101
})";

// kLlamaJson with one top-level field replaced (or added); value is raw JSON.
std::string llama_with(const std::string& field, const std::string& value) {
  std::string text = kLlamaJson;
  const std::string key = "\"" + field + "\":";
  const size_t at = text.find(key);
  if (at == std::string::npos) return "{" + key + " " + value + "," + text.substr(1);
  size_t end = at + key.size();
  int depth = 0;
  for (; end < text.size(); ++end) {
    const char c = text[end];
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    if ((c == ',' && depth == 0) || depth < 0) break;
  }
  return text.substr(0, at) + key + " " + value + text.substr(end);
}

// text with the first occurrence of from replaced by to.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

TEST(LlamaConfig, ReadsTransformers5Llama) {
  const LlamaConfig c = LlamaConfig::from_json_string(kLlamaJson);
  EXPECT_EQ(c.architecture(), LlamaArchitecture::kLlama);
  EXPECT_EQ(c.architecture_name(), "LlamaForCausalLM");
  EXPECT_FALSE(c.qkv_bias());
  EXPECT_EQ(c.vocab_size(), 101);
  EXPECT_EQ(c.hidden_size(), 64);
  EXPECT_EQ(c.intermediate_size(), 128);
  EXPECT_EQ(c.num_hidden_layers(), 2);
  EXPECT_EQ(c.num_attention_heads(), 4);
  EXPECT_EQ(c.num_key_value_heads(), 2);
  EXPECT_EQ(c.resolved_head_dim(), 16);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps(), 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta(), 10000.0);
  EXPECT_EQ(c.rope_scaling().rope_type(), RopeType::kDefault);
  EXPECT_FALSE(c.tie_word_embeddings());
  EXPECT_FALSE(c.pad_token_id().has_value());
  EXPECT_EQ(c.bos_token_id(), std::optional<int64_t>(1));
  EXPECT_EQ(c.eos_token_ids(), std::vector<int64_t>{2});
  EXPECT_EQ(c.torch_dtype(), "float32");
}

TEST(LlamaConfig, ReadsTransformers5Qwen2) {
  const LlamaConfig c = LlamaConfig::from_json_string(kQwen2Json);
  EXPECT_EQ(c.architecture(), LlamaArchitecture::kQwen2);
  EXPECT_TRUE(c.qkv_bias());
  EXPECT_TRUE(c.tie_word_embeddings());
  EXPECT_DOUBLE_EQ(c.rope_theta(), 1e6);
  EXPECT_EQ(c.pad_token_id(), std::optional<int64_t>(3));
  EXPECT_FALSE(c.bos_token_id().has_value());
  EXPECT_EQ(c.eos_token_ids(), (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(c.resolved_head_dim(), 16);
}

TEST(LlamaConfig, ReadsQwen3AndMistralWithTheirDefaults) {
  const LlamaConfig q = LlamaConfig::from_json_string(
      R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 64, "num_attention_heads": 32,
          "num_hidden_layers": 3, "vocab_size": 50, "use_sliding_window": true, "sliding_window": 16,
          "max_window_layers": 1, "attention_bias": true})");
  EXPECT_EQ(q.architecture(), LlamaArchitecture::kQwen3);
  EXPECT_EQ(q.architecture_name(), "Qwen3ForCausalLM");
  EXPECT_TRUE(q.qk_norm());
  EXPECT_TRUE(q.qkv_bias());
  EXPECT_TRUE(q.o_bias());
  EXPECT_EQ(q.resolved_head_dim(), 128);  // Qwen3Config's head_dim default, not hidden / heads
  EXPECT_EQ(q.num_key_value_heads(), 32);
  EXPECT_EQ(q.layer_types(), (std::vector<std::string>{"full_attention", "sliding_attention", "sliding_attention"}));
  EXPECT_EQ(q.layer_sliding_window(0), 0);
  EXPECT_EQ(q.layer_sliding_window(2), 16);

  const LlamaConfig m = LlamaConfig::from_json_string(
      R"({"architectures": ["MistralForCausalLM"], "hidden_size": 64, "num_attention_heads": 8,
          "num_hidden_layers": 2, "vocab_size": 50})");
  EXPECT_EQ(m.architecture(), LlamaArchitecture::kMistral);
  EXPECT_EQ(m.sliding_window(), 4096);  // MistralConfig's default, on every layer
  EXPECT_EQ(m.layer_sliding_window(1), 4096);
  EXPECT_EQ(m.num_key_value_heads(), 8);
  EXPECT_EQ(m.max_position_embeddings(), 131072);
  EXPECT_EQ(m.bos_token_id(), std::optional<int64_t>(1));
  EXPECT_FALSE(m.qkv_bias());
  const LlamaConfig no_window = LlamaConfig::from_json_string(
      R"({"model_type": "mistral", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
          "num_hidden_layers": 2, "vocab_size": 50, "sliding_window": null})");
  EXPECT_EQ(no_window.layer_sliding_window(0), 0);

  // Qwen2 with use_sliding_window but a null window: every layer is full attention, as transformers reads it.
  const LlamaConfig qwen2 = LlamaConfig::from_json_string(
      replaced(kQwen2Json, R"("use_sliding_window": false)", R"("use_sliding_window": true)"));
  EXPECT_EQ(qwen2.layer_sliding_window(1), 0);

  const LlamaConfig dynamic = LlamaConfig::from_json_string(
      llama_with("rope_parameters", R"({"rope_type": "dynamic", "factor": 2.0, "rope_theta": 5000.0})"));
  EXPECT_EQ(dynamic.rope_scaling().rope_type(), RopeType::kDynamic);
  EXPECT_DOUBLE_EQ(dynamic.rope_scaling().factor(), 2.0);
}

TEST(LlamaConfig, ReadsOlderRopeScalingLayoutAndDefaults) {
  // A Llama 3.1 style file: top-level rope_theta, rope_scaling with rope_type llama3, no head_dim and no
  // num_key_value_heads (defaults follow transformers' LlamaConfig).
  const std::string text = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "num_hidden_layers": 1, "vocab_size": 50, "rope_theta": 500000.0, "torch_dtype": "bfloat16",
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}})";
  const LlamaConfig c = LlamaConfig::from_json_string(text);
  EXPECT_DOUBLE_EQ(c.rope_theta(), 500000.0);
  EXPECT_EQ(c.rope_scaling().rope_type(), RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling().factor(), 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling().high_freq_factor(), 4.0);
  EXPECT_EQ(c.rope_scaling().original_max_position_embeddings(), 8192);
  EXPECT_EQ(c.num_key_value_heads(), 4);  // defaults to num_attention_heads for Llama
  EXPECT_EQ(c.intermediate_size(), 11008);
  EXPECT_EQ(c.resolved_head_dim(), 16);
  EXPECT_EQ(c.torch_dtype(), "bfloat16");

  // "type" is the older name of rope_type; linear needs a factor; a model_type alone is enough.
  const LlamaConfig linear = LlamaConfig::from_json_string(
      R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 2, "vocab_size": 10,
          "rope_scaling": {"type": "linear", "factor": 2.0}})");
  EXPECT_EQ(linear.rope_scaling().rope_type(), RopeType::kLinear);
  EXPECT_DOUBLE_EQ(linear.rope_scaling().factor(), 2.0);
  // rope_parameters wins over rope_scaling and its rope_theta over the top-level one.
  const LlamaConfig v5 = LlamaConfig::from_json_string(
      R"({"model_type": "qwen2", "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 10,
          "rope_theta": 7.0,
          "rope_parameters": {"rope_type": "default", "rope_theta": 9.0}, "rope_scaling": {"type": "linear"}})");
  EXPECT_DOUBLE_EQ(v5.rope_theta(), 9.0);
  EXPECT_EQ(v5.rope_scaling().rope_type(), RopeType::kDefault);
  EXPECT_EQ(v5.num_key_value_heads(), 1);
  EXPECT_EQ(v5.max_position_embeddings(), 32768);  // Qwen2Config's default
}

TEST(LlamaConfig, JsonRoundTrip) {
  const std::string qwen3 = replaced(replaced(kQwen2Json, R"("qwen2")", R"("qwen3")"), "Qwen2ForCausalLM", "Qwen3ForCausalLM");
  const std::string mistral = R"({"architectures": ["MistralForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
      "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 101, "sliding_window": 32})";
  const std::string qwen2_sliding =
      replaced(replaced(kQwen2Json, R"("use_sliding_window": false)", R"("use_sliding_window": true)"),
               R"("sliding_window": null)", R"("sliding_window": 8)");
  const std::string sliding = replaced(qwen2_sliding, R"(["full_attention", "full_attention"])",
                                       R"(["full_attention", "sliding_attention"])");
  for (const std::string& text : {std::string(kLlamaJson), std::string(kQwen2Json), qwen3, mistral, sliding}) {
    LlamaConfig a = LlamaConfig::from_json_string(text);
    a.rope_scaling(RopeScaling().rope_type(RopeType::kLlama3).factor(4).low_freq_factor(1).high_freq_factor(2)
                       .original_max_position_embeddings(64));
    const LlamaConfig b = LlamaConfig::from_json_string(a.to_json_string());
    EXPECT_EQ(a.architecture(), b.architecture());
    EXPECT_EQ(a.vocab_size(), b.vocab_size());
    EXPECT_EQ(a.num_key_value_heads(), b.num_key_value_heads());
    EXPECT_EQ(a.resolved_head_dim(), b.resolved_head_dim());
    EXPECT_EQ(a.tie_word_embeddings(), b.tie_word_embeddings());
    EXPECT_DOUBLE_EQ(a.rope_theta(), b.rope_theta());
    EXPECT_EQ(b.rope_scaling().rope_type(), RopeType::kLlama3);
    EXPECT_DOUBLE_EQ(b.rope_scaling().factor(), 4.0);
    EXPECT_EQ(b.rope_scaling().original_max_position_embeddings(), 64);
    EXPECT_EQ(a.pad_token_id(), b.pad_token_id());
    EXPECT_EQ(a.bos_token_id(), b.bos_token_id());
    EXPECT_EQ(a.eos_token_ids(), b.eos_token_ids());
    EXPECT_EQ(a.sliding_window(), b.sliding_window());
    EXPECT_EQ(a.layer_types(), b.layer_types());
    EXPECT_EQ(a.attention_bias(), b.attention_bias());
    for (int64_t l = 0; l < a.num_hidden_layers(); ++l) EXPECT_EQ(a.layer_sliding_window(l), b.layer_sliding_window(l));
  }
  const LlamaConfig d = LlamaConfig::from_json_string(
      LlamaConfig::from_json_string(kLlamaJson).rope_scaling(RopeScaling().rope_type(RopeType::kDynamic).factor(3))
          .to_json_string());
  EXPECT_EQ(d.rope_scaling().rope_type(), RopeType::kDynamic);
  EXPECT_DOUBLE_EQ(d.rope_scaling().factor(), 3.0);
}

TEST(LlamaConfig, WrittenFileCarriesTheTransformers4RopeKeysToo) {
  // transformers 4 reads rope_theta + rope_scaling and ignores rope_parameters: without it, the written file read
  // the old way must give the same rotary parameters.
  LlamaConfig a = LlamaConfig::from_json_string(kLlamaJson);
  a.rope_theta(500000.0).rope_scaling(RopeScaling().rope_type(RopeType::kLlama3).factor(8).low_freq_factor(1)
                                          .high_freq_factor(4).original_max_position_embeddings(16));
  const std::string written = a.to_json_string();
  ASSERT_NE(written.find("\"rope_parameters\""), std::string::npos);
  const LlamaConfig b = LlamaConfig::from_json_string(replaced(written, "\"rope_parameters\"", "\"unread_key\""));
  EXPECT_DOUBLE_EQ(b.rope_theta(), 500000.0);
  EXPECT_EQ(b.rope_scaling().rope_type(), RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(b.rope_scaling().factor(), 8.0);
  EXPECT_DOUBLE_EQ(b.rope_scaling().high_freq_factor(), 4.0);
  EXPECT_EQ(b.rope_scaling().original_max_position_embeddings(), 16);
  const std::string plain = LlamaConfig::from_json_string(kLlamaJson).to_json_string();
  const LlamaConfig c = LlamaConfig::from_json_string(replaced(plain, "\"rope_parameters\"", "\"unread_key\""));
  EXPECT_EQ(c.rope_scaling().rope_type(), RopeType::kDefault);
  EXPECT_DOUBLE_EQ(c.rope_theta(), 10000.0);
}

TEST(LlamaConfig, RefusesUnsupportedValuesNamingTheField) {
  const auto read = [](const std::string& text) { return [text] { LlamaConfig::from_json_string(text); }; };
  expect_error(read(llama_with("architectures", R"(["GemmaForCausalLM"])")),
               "config.json: architectures is 'GemmaForCausalLM'; supported: 'LlamaForCausalLM', "
               "'LlamaForSequenceClassification', 'Qwen2ForCausalLM', 'Qwen2ForSequenceClassification', "
               "'Qwen3ForCausalLM', 'Qwen3ForSequenceClassification', 'MistralForCausalLM', "
               "'MistralForSequenceClassification'");
  expect_error(read(llama_with("model_type", R"("gemma")")),
               "config.json: model_type is 'gemma'; supported: 'llama', 'qwen2', 'qwen3', 'mistral'");
  expect_error(read(llama_with("model_type", R"("qwen2")")),
               "model_type is 'qwen2' but architectures names 'LlamaForCausalLM'");
  expect_error(read(R"({"hidden_size": 8})"), "neither architectures nor model_type is given");
  expect_error(read(llama_with("hidden_act", R"("gelu")")),
               "config.json: hidden_act is 'gelu'; only 'silu' (SwiGLU) is supported");
  expect_error(read(llama_with("attention_bias", "1")), "config.json: attention_bias must be true or false, got 1");
  expect_error(read(llama_with("attention_dropout", "0.1")), "config.json: attention_dropout is 0.1; only 0");
  expect_error(read(llama_with("rope_parameters", R"({"rope_type": "yarn", "factor": 4.0})")),
               "config.json: rope_parameters.rope_type is 'yarn'; supported: 'default', 'linear', 'llama3', 'dynamic'");
  expect_error(read(llama_with("rope_parameters", R"({"rope_type": "dynamic"})")),
               "rope_parameters.factor is required for rope_type 'dynamic'");
  expect_error(read(llama_with("rope_parameters", R"({"rope_type": "llama3", "factor": 4.0})")),
               "rope_parameters.low_freq_factor is required for rope_type 'llama3'");
  expect_error(read(llama_with("rope_parameters", R"({"rope_type": "default", "partial_rotary_factor": 0.5})")),
               "rope_parameters.partial_rotary_factor is 0.5; only 1");
  expect_error(read(llama_with("rope_parameters", R"({"full_attention": {"rope_type": "default"}})")),
               "per-layer-type rope parameters are not supported");
  expect_error(read(llama_with("num_key_value_heads", "3")),
               "num_key_value_heads must be > 0 and divide num_attention_heads (4), got 3");
  expect_error(read(llama_with("hidden_size", R"("64")")), "config.json: hidden_size must be an integer, got \"64\"");
  expect_error(read(llama_with("head_dim", "15")), "head_dim must be even for rotary embeddings, got 15");
  expect_error(read(llama_with("pad_token_id", "101")), "pad_token_id must be in [0, vocab_size = 101), got 101");
  expect_error(read(llama_with("vocab_size", "0")), "vocab_size must be > 0, got 0");
  expect_error(read(llama_with("tie_word_embeddings", "1")), "tie_word_embeddings must be true or false, got 1");
  expect_error(read("{not json"), "config.json: not valid JSON");
  expect_error(read("[]"), "the config must be a JSON object");
  expect_error([] { LlamaConfig::from_json_file("/nonexistent/config.json"); },
               "cannot open the model config '/nonexistent/config.json'");

  // Sliding windows: layer types must be known, one per layer, and only name a window that is set.
  const std::string sliding = replaced(kQwen2Json, R"("use_sliding_window": false)", R"("use_sliding_window": true)");
  expect_error(read(replaced(kQwen2Json, R"(["full_attention", "full_attention"])",
                             R"(["full_attention", "sliding_attention"])")),
               "config.json: layer_types[1] is 'sliding_attention' but no sliding window is set");
  expect_error(read(replaced(kQwen2Json, R"(["full_attention", "full_attention"])",
                             R"(["full_attention", "chunked_attention"])")),
               "config.json: layer_types[1] is \"chunked_attention\"; supported: 'full_attention', 'sliding_attention'");
  expect_error(read(replaced(kQwen2Json, R"(["full_attention", "full_attention"])", R"(["full_attention"])")),
               "layer_types must list one type per layer (2)");
  expect_error(read(replaced(sliding, R"("sliding_window": null)", R"("sliding_window": -4)")),
               "config.json: sliding_window must be null or > 0, got -4");
  expect_error(read(R"({"model_type": "mistral", "hidden_size": 64, "num_attention_heads": 4, "sliding_window": 0})"),
               "config.json: sliding_window must be null or > 0, got 0");
  // A Qwen2 file may carry attention_bias: Qwen2's biases are fixed by the architecture, so it is ignored.
  EXPECT_NO_THROW(LlamaConfig::from_json_string(replaced(kQwen2Json, R"("use_cache": true)", R"("attention_bias": true)")));
}

TEST(LlamaConfig, ValidateOnProgrammaticConfigs) {
  EXPECT_NO_THROW(LlamaConfig().vocab_size(10).hidden_size(8).num_attention_heads(2).num_key_value_heads(1).validate());
  expect_error([] { LlamaConfig().hidden_size(10).num_attention_heads(4).num_key_value_heads(4).validate(); },
               "hidden_size (10) must be a multiple of num_attention_heads (4) when head_dim is not given");
  expect_error([] { LlamaConfig().rms_norm_eps(0).validate(); }, "rms_norm_eps must be > 0, got 0");
  expect_error([] { LlamaConfig().sliding_window(8).validate(); },
               "Llama has no sliding-window attention; sliding_window must be 0, got 8");
  expect_error([] { LlamaConfig().architecture(LlamaArchitecture::kQwen2).num_hidden_layers(2).layer_types({"full_attention"}).validate(); },
               "layer_types must be empty or list one type per layer (2), got 1");
  expect_error([] { LlamaConfig().architecture(LlamaArchitecture::kMistral).mlp_bias(true).validate(); },
               "mlp_bias is only supported for Llama");
  expect_error(
      [] {
        LlamaConfig().rope_scaling(RopeScaling().rope_type(RopeType::kLlama3).low_freq_factor(4).high_freq_factor(1))
            .validate();
      },
      "rope_scaling needs 0 < low_freq_factor < high_freq_factor, got 4 and 1");
}

}  // namespace
}  // namespace prefopt
