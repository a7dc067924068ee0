// LlamaConfig: the hyper-parameters of a Llama-family decoder, read from (and written to) a Hugging Face
// config.json. It only describes a model; it never builds one and never reads weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/arg.h>

namespace prefopt::model {

/// The Hugging Face architectures LlamaConfig describes. They differ only in the attention projections:
/// Qwen2 has biases on q_proj, k_proj and v_proj (not o_proj); Llama has none.
enum class LlamaArchitecture { kLlama, kQwen2 };

/// How rotary frequencies are rescaled (Hugging Face's rope_type).
enum class RopeType {
  /// inv_freq[i] = 1 / theta^(2i / head_dim).
  kDefault,
  /// inv_freq / factor ("linear" position interpolation).
  kLinear,
  /// Llama 3.1's piecewise rescaling by factor, low_freq_factor, high_freq_factor and
  /// original_max_position_embeddings ("llama3").
  kLlama3,
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
/// architecture's Hugging Face config class (transformers 5), listed as Llama / Qwen2 where they differ:
///
/// | field                    | default                          | accepted values                              |
/// |--------------------------|----------------------------------|----------------------------------------------|
/// | architectures            | from model_type                  | ["LlamaForCausalLM"] or ["Qwen2ForCausalLM"] |
/// | model_type               | from architectures               | "llama" or "qwen2", agreeing with the above  |
/// | vocab_size               | 32000 / 151936                   | > 0                                          |
/// | hidden_size              | 4096                             | > 0                                          |
/// | intermediate_size        | 11008 / 22016                    | > 0                                          |
/// | num_hidden_layers        | 32                               | >= 0                                         |
/// | num_attention_heads      | 32                               | > 0                                          |
/// | num_key_value_heads      | num_attention_heads / 32         | > 0, divides num_attention_heads             |
/// | head_dim                 | hidden_size / num_attention_heads| > 0 and even                                 |
/// | hidden_act               | "silu"                           | "silu" (or its alias "swish")                |
/// | rms_norm_eps             | 1e-6                             | > 0                                          |
/// | rope_parameters          | {"rope_type": "default"}         | rope_type default, linear or llama3 (below)  |
/// | rope_scaling, rope_theta | null, 10000 (pre-5 files)        | read when rope_parameters is absent          |
/// | max_position_embeddings  | 2048 / 32768                     | > 0 (informational; no length limit)         |
/// | tie_word_embeddings      | false                            | true or false                                |
/// | initializer_range        | 0.02                             | >= 0 (initialisation of a new model)         |
/// | pad_token_id             | null                             | null or in [0, vocab_size)                   |
/// | bos_token_id             | 1 / null                         | null or an integer                           |
/// | eos_token_id             | 2 / null                         | null, an integer or a list of integers       |
/// | dtype (torch_dtype)      | none                             | informational; kept as written               |
/// | attention_bias, mlp_bias | false (Llama)                    | false only                                   |
/// | attention_dropout        | 0.0                              | 0 only (no dropout is implemented)           |
/// | pretraining_tp           | 1 (Llama)                        | any (it only splits matmuls; same result)    |
/// | use_sliding_window       | false (Qwen2)                    | false, or true with no layer sliding         |
/// | max_window_layers        | 28 (Qwen2)                       | with use_sliding_window: >= num_hidden_layers|
/// | layer_types              | all "full_attention" (Qwen2)     | only "full_attention", one per layer         |
///
/// rope_parameters (or the older rope_scaling) accepts rope_type (or its older name type) "default", "linear"
/// (with factor) or "llama3" (with factor, low_freq_factor, high_freq_factor, original_max_position_embeddings),
/// optionally rope_theta (which wins over a top-level rope_theta), and partial_rotary_factor only if 1.
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

 public:  // TORCH_ARG leaves the access at private
  /// head_dim, or hidden_size / num_attention_heads when head_dim is 0.
  int64_t resolved_head_dim() const;
  /// Whether q_proj, k_proj and v_proj carry biases (true for Qwen2).
  bool qkv_bias() const { return architecture_ == LlamaArchitecture::kQwen2; }
  /// "LlamaForCausalLM" or "Qwen2ForCausalLM"; "...ForSequenceClassification" when num_labels >= 1.
  std::string architecture_name() const;

  /// Checks every field (sizes positive, heads dividing, head_dim even, pad_token_id in the vocabulary, rope
  /// parameters consistent); raises c10::Error naming the field.
  void validate() const;

  /// Reads a config.json; errors name the file and the field. The result is validated.
  static LlamaConfig from_json_file(const std::string& path);
  /// Reads config.json text; source names it in errors.
  static LlamaConfig from_json_string(const std::string& text, const std::string& source = "config.json");
  /// A config.json (transformers 5 layout, rope_parameters) that from_json_string and transformers both read.
  std::string to_json_string() const;
};

}  // namespace prefopt::model

namespace prefopt {
/// The model layer lives in prefopt::model; its names are also reachable as prefopt::X (LlamaForCausalLM,
/// load_llama, ...), the spelling code written before the layer had its namespace uses.
using namespace model;
}  // namespace prefopt
