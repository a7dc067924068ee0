// LlamaConfig: the hyper-parameters of a Llama-family decoder, read from (and written to) a Hugging Face
// config.json. It only describes a model; it never builds one and never reads weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/arg.h>

namespace prefopt::model {

/// The Hugging Face architectures LlamaConfig describes. They share the Llama block (RMSNorm, rotary embeddings,
/// SwiGLU, grouped-query attention) and differ in:
/// - kLlama: biases on every attention projection when attention_bias, on the MLP when mlp_bias.
/// - kQwen2: biases on q_proj, k_proj and v_proj (never o_proj); sliding-window attention on the layers
///   layer_types marks "sliding_attention".
/// - kQwen3: an RMSNorm over each head of the queries and keys (q_norm, k_norm, before the rotation); biases on
///   all four projections when attention_bias; sliding layers as Qwen2.
/// - kMistral: sliding-window attention on every layer when sliding_window is set.
enum class LlamaArchitecture { kLlama, kQwen2, kQwen3, kMistral };

/// How rotary frequencies are rescaled (Hugging Face's rope_type).
enum class RopeType {
  /// inv_freq[i] = 1 / theta^(2i / head_dim).
  kDefault,
  /// inv_freq / factor ("linear" position interpolation).
  kLinear,
  /// Llama 3.1's piecewise rescaling by factor, low_freq_factor, high_freq_factor and
  /// original_max_position_embeddings ("llama3").
  kLlama3,
  /// Dynamic NTK scaling ("dynamic"): for a forward whose largest position p reaches past
  /// max_position_embeddings M, theta becomes theta * (factor * (p + 1) / M - (factor - 1))^(d / (d - 2)).
  /// Computed per forward from that forward's positions; transformers instead keeps the largest frequencies
  /// it has seen in the module, so a shorter sequence after a longer one (both past M) differs from it.
  kDynamic,
};

/// Rotary scaling parameters (Hugging Face's rope_parameters / rope_scaling); only the fields of rope_type are used.
struct RopeScaling {
  TORCH_ARG(RopeType, rope_type) = RopeType::kDefault;
  TORCH_ARG(double, factor) = 1.0;
  TORCH_ARG(double, low_freq_factor) = 1.0;
  TORCH_ARG(double, high_freq_factor) = 4.0;
  TORCH_ARG(int64_t, original_max_position_embeddings) = 8192;
};

/// Hyper-parameters of a decoder-only Llama-family transformer.
///
/// From config.json (from_json_file), these fields are read; an absent field takes the default of the
/// architecture's Hugging Face config class (transformers 5), listed as Llama / Qwen2 / Qwen3 / Mistral where
/// they differ:
///
/// | field                    | default                               | accepted values                          |
/// |--------------------------|---------------------------------------|------------------------------------------|
/// | architectures            | from model_type                       | [X + "ForCausalLM"] or [X + "ForSequence |
/// |                          |                                       | Classification"], X Llama, Qwen2, Qwen3, |
/// |                          |                                       | Mistral                                  |
/// | model_type               | from architectures                    | "llama", "qwen2", "qwen3", "mistral",    |
/// |                          |                                       | agreeing with the above                  |
/// | vocab_size               | 32000 / 151936 / 151936 / 32000       | > 0                                      |
/// | hidden_size              | 4096                                  | > 0                                      |
/// | intermediate_size        | 11008 / 22016 / 22016 / 14336         | > 0                                      |
/// | num_hidden_layers        | 32                                    | >= 0                                     |
/// | num_attention_heads      | 32                                    | > 0                                      |
/// | num_key_value_heads      | num_attention_heads / 32 / 32 / 8     | > 0, divides num_attention_heads         |
/// | head_dim                 | hidden / heads; Qwen3: 128            | > 0 and even                             |
/// | hidden_act               | "silu"                                | "silu" (or its alias "swish")            |
/// | rms_norm_eps             | 1e-6                                  | > 0                                      |
/// | rope_parameters          | {"rope_type": "default"}              | default, linear, llama3, dynamic (below) |
/// | rope_scaling, rope_theta | null, 10000 (pre-5 files)             | read when rope_parameters is absent      |
/// | max_position_embeddings  | 2048 / 32768 / 32768 / 131072         | > 0 (dynamic rope's M; no length limit)  |
/// | tie_word_embeddings      | false                                 | true or false                            |
/// | initializer_range        | 0.02                                  | >= 0 (initialisation of a new model)     |
/// | pad_token_id             | null                                  | null or in [0, vocab_size)               |
/// | bos_token_id             | 1 / null / null / 1                   | null or an integer                       |
/// | eos_token_id             | 2 / null / null / 2                   | null, an integer or a list of integers   |
/// | dtype (torch_dtype)      | none                                  | informational; kept as written           |
/// | attention_bias           | false (Llama, Qwen3)                  | true or false (Qwen2: ignored, fixed)    |
/// | mlp_bias                 | false (Llama)                         | true or false                            |
/// | attention_dropout        | 0.0                                   | 0 only (no dropout is implemented)       |
/// | pretraining_tp           | 1 (Llama)                             | any (it only splits matmuls; same result)|
/// | sliding_window           | Qwen2/3: 4096 if use_sliding_window;  | null or > 0                              |
/// |                          | Mistral: 4096                         |                                          |
/// | use_sliding_window       | false (Qwen2, Qwen3)                  | true or false                            |
/// | max_window_layers        | 28 (Qwen2, Qwen3)                     | >= 0: layers from it on slide            |
/// | layer_types              | from the two above (Qwen2, Qwen3)     | "full_attention" / "sliding_attention",  |
/// |                          |                                       | one per layer                            |
///
/// rope_parameters (or the older rope_scaling) accepts rope_type (or its older name type) "default", "linear"
/// (with factor), "llama3" (with factor, low_freq_factor, high_freq_factor, original_max_position_embeddings) or
/// "dynamic" (with factor), optionally rope_theta (which wins over a top-level rope_theta), and
/// partial_rotary_factor only if 1.
/// Every other field of config.json is ignored. Unsupported values raise an error naming the field, the value
/// and what is accepted, e.g. "config.json: hidden_act is 'gelu'; only 'silu' (SwiGLU) is supported".
///
/// Example:
/// ```
/// auto config = prefopt::LlamaConfig::from_json_file("Qwen2.5-0.5B/config.json");
/// // or, for a model trained from scratch:
/// auto tiny = prefopt::LlamaConfig().vocab_size(256).hidden_size(64).intermediate_size(172)
///                 .num_hidden_layers(2).num_attention_heads(4).num_key_value_heads(2).tie_word_embeddings(true);
/// tiny.validate();
/// ```
struct LlamaConfig {
  TORCH_ARG(LlamaArchitecture, architecture) = LlamaArchitecture::kLlama;
  TORCH_ARG(int64_t, vocab_size) = 32000;
  TORCH_ARG(int64_t, hidden_size) = 4096;
  TORCH_ARG(int64_t, intermediate_size) = 11008;
  TORCH_ARG(int64_t, num_hidden_layers) = 32;
  TORCH_ARG(int64_t, num_attention_heads) = 32;
  TORCH_ARG(int64_t, num_key_value_heads) = 32;
  /// 0 means hidden_size / num_attention_heads (see resolved_head_dim()).
  TORCH_ARG(int64_t, head_dim) = 0;
  TORCH_ARG(double, rms_norm_eps) = 1e-6;
  TORCH_ARG(double, rope_theta) = 10000.0;
  TORCH_ARG(RopeScaling, rope_scaling) = {};
  TORCH_ARG(int64_t, max_position_embeddings) = 2048;
  TORCH_ARG(bool, tie_word_embeddings) = false;
  TORCH_ARG(double, initializer_range) = 0.02;
  /// The embedding row of this token gets no gradient and is initialised to zero (as nn.Embedding's padding_idx).
  TORCH_ARG(std::optional<int64_t>, pad_token_id) = std::nullopt;
  TORCH_ARG(std::optional<int64_t>, bos_token_id) = std::nullopt;
  TORCH_ARG(std::vector<int64_t>, eos_token_ids) = {};
  /// config.json's dtype (or torch_dtype) as written, e.g. "bfloat16"; empty when absent. Informational only:
  /// the dtype a model is built or loaded in is chosen by the caller.
  TORCH_ARG(std::string, torch_dtype) = "";
  /// 0 for a causal LM (architectures "LlamaForCausalLM" / "Qwen2ForCausalLM"); >= 1 for a sequence classifier
  /// ("...ForSequenceClassification", num_labels = the size of config.json's id2label, 2 when absent, as
  /// transformers reads it). A reward model has 1.
  TORCH_ARG(int64_t, num_labels) = 0;
  /// Biases on q_proj, k_proj, v_proj and o_proj (Llama, Qwen3; Qwen2 has its own fixed q/k/v biases and
  /// Mistral none), and on gate_proj, up_proj and down_proj (Llama).
  TORCH_ARG(bool, attention_bias) = false;
  TORCH_ARG(bool, mlp_bias) = false;
  /// Sliding-window attention: a query at index i attends to keys at indices j with i - W < j <= i. 0 = none.
  /// Which layers slide: every layer when layer_types is empty, else those marked "sliding_attention".
  TORCH_ARG(int64_t, sliding_window) = 0;
  /// One "full_attention" or "sliding_attention" per layer (Qwen2, Qwen3), or empty.
  TORCH_ARG(std::vector<std::string>, layer_types) = {};

 public:  // TORCH_ARG leaves the access at private
  /// head_dim, or hidden_size / num_attention_heads when head_dim is 0.
  int64_t resolved_head_dim() const;
  /// Whether q_proj, k_proj and v_proj carry biases (Qwen2, or attention_bias).
  bool qkv_bias() const { return architecture_ == LlamaArchitecture::kQwen2 || attention_bias_; }
  /// Whether o_proj carries a bias (attention_bias, except for Qwen2).
  bool o_bias() const { return architecture_ != LlamaArchitecture::kQwen2 && attention_bias_; }
  /// Whether each attention head's queries and keys are RMS-normed (Qwen3's q_norm, k_norm).
  bool qk_norm() const { return architecture_ == LlamaArchitecture::kQwen3; }
  /// The sliding window of layer `layer` (0-based), or 0 when that layer attends to every earlier token.
  int64_t layer_sliding_window(int64_t layer) const;
  /// "LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM" or "MistralForCausalLM";
  /// "...ForSequenceClassification" when num_labels >= 1.
  std::string architecture_name() const;
  /// "llama", "qwen2", "qwen3" or "mistral".
  std::string model_type() const;

  /// Checks every field (sizes positive, heads dividing, head_dim even, pad_token_id in the vocabulary, rope
  /// parameters consistent); raises c10::Error naming the field.
  void validate() const;

  /// Reads a config.json; errors name the file and the field. The result is validated.
  static LlamaConfig from_json_file(const std::string& path);
  /// Reads config.json text; source names it in errors.
  static LlamaConfig from_json_string(const std::string& text, const std::string& source = "config.json");
  /// A config.json that from_json_string and transformers 4 and 5 all read: rope_parameters (transformers 5) and
  /// rope_theta + rope_scaling (transformers 4) both written, with the same values.
  std::string to_json_string() const;
};

}  // namespace prefopt::model

namespace prefopt {
/// The model layer lives in prefopt::model; its names are also reachable as prefopt::X (LlamaForCausalLM,
/// load_llama, ...), the spelling code written before the layer had its namespace uses.
using namespace model;
}  // namespace prefopt
