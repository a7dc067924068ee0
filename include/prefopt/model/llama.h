// LlamaForCausalLM: a decoder-only transformer of the Llama family (RMSNorm, rotary embeddings, SwiGLU MLP,
// grouped-query attention, tied or untied embeddings) as a torch::nn::Module, whose parameter names are those of
// Hugging Face's LlamaForCausalLM / Qwen2ForCausalLM, plus loading and saving of Hugging Face checkpoint folders.
// It computes logits or final hidden states of whole sequences; it never keeps a KV cache, never applies dropout
// and never computes a loss (scoring does that from the logits or, without forming them, from hidden states).
#pragma once

#include <cstdint>
#include <string>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <prefopt/model/llama_config.h>

namespace prefopt::model {

/// Root-mean-square layer norm: weight * x / sqrt(mean(x^2) + eps), the statistics taken in float32 and the
/// result cast back to x's dtype before the weight multiplies it (as Hugging Face's LlamaRMSNorm).
/// - x: [..., size], any floating dtype; returns the same shape and dtype.
class RMSNormImpl : public torch::nn::Cloneable<RMSNormImpl> {
 public:
  RMSNormImpl(int64_t size, double eps);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// [size], initialised to ones.
  torch::Tensor weight;

 private:
  int64_t size_;
  double eps_;
};
TORCH_MODULE(RMSNorm);

/// Grouped-query causal self-attention with rotary embeddings: q_proj, k_proj, v_proj (biases for Qwen2),
/// o_proj; each key/value head serves num_attention_heads / num_key_value_heads query heads.
/// - x: [B, T, hidden_size]; cos, sin: [B or 1, 1, T, head_dim] in x's dtype; mask: undefined (plain causal)
///   or [B, 1, T, T] bool, true where a query may attend a key. Returns [B, T, hidden_size].
class LlamaAttentionImpl : public torch::nn::Cloneable<LlamaAttentionImpl> {
 public:
  explicit LlamaAttentionImpl(const LlamaConfig& config);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaAttention);

/// SwiGLU feed-forward: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases. x: [..., hidden_size].
class LlamaMLPImpl : public torch::nn::Cloneable<LlamaMLPImpl> {
 public:
  explicit LlamaMLPImpl(const LlamaConfig& config);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaMLP);

/// One pre-norm block: h = x + self_attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
class LlamaDecoderLayerImpl : public torch::nn::Cloneable<LlamaDecoderLayerImpl> {
 public:
  explicit LlamaDecoderLayerImpl(const LlamaConfig& config);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);
  LlamaAttention self_attn{nullptr};
  LlamaMLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaDecoderLayer);

/// The decoder body (Hugging Face's LlamaModel, the "model." prefix of parameter names): embed_tokens, the
/// layers and the final norm. forward returns the final (normed) hidden states; see LlamaForCausalLMImpl.
class LlamaModelImpl : public torch::nn::Cloneable<LlamaModelImpl> {
 public:
  explicit LlamaModelImpl(const LlamaConfig& config);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& position_ids = {});
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};

 private:
  LlamaConfig config_;
  // [head_dim / 2] float32 on the CPU: the rotary inverse frequencies, rope scaling applied. Not a buffer, so it
  // is neither saved nor converted to the model's dtype; it is moved to the inputs' device when used.
  torch::Tensor inv_freq_;
};
TORCH_MODULE(LlamaModel);

/// A Llama-family causal language model (LlamaForCausalLM, Qwen2ForCausalLM): the decoder plus lm_head, which
/// is the embedding matrix itself when config.tie_word_embeddings (then no lm_head submodule exists).
///
/// Parameter names are Hugging Face's ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
/// ..., "lm_head.weight"), so named_parameters() matches a checkpoint's keys. A new model is initialised as
/// transformers does: weights ~ N(0, initializer_range), biases 0, norms 1, the pad_token_id row 0. It runs in
/// the dtype and on the device its parameters are moved to (model->to(torch::kBFloat16)).
///
/// Inputs of forward and hidden_states:
/// - input_ids: [B, T] int64 (other integer dtypes are converted), each in [0, vocab_size), on the model's device.
/// - attention_mask: undefined (every token real) or [B, T] bool or integer 0/1; 0 marks padding, which no query
///   attends to. Padding may sit anywhere (right padding is what prefopt's collators produce). A query whose
///   every visible key is padding (left padding's pad positions) attends to itself only, so no output is NaN;
///   the values at padded positions are meaningless and should be masked by the caller.
/// - position_ids: undefined (0..T-1 for every row, as transformers' forward does) or [B, T] / [1, T] integers.
///
/// Example:
/// ```
/// auto model = prefopt::load_llama("checkpoints/Qwen2.5-0.5B");          // float32 on the CPU
/// auto ids = torch::tensor({{1, 15, 22, 0}, {1, 9, 4, 7}}, torch::kLong);
/// auto mask = torch::tensor({{1, 1, 1, 0}, {1, 1, 1, 1}}, torch::kLong);
/// torch::Tensor logits = model->forward(ids, mask);                      // [2, 4, V]
/// torch::Tensor hidden = model->hidden_states(ids, mask);                // [2, 4, H]
/// // fused scoring without the [B, T, V] logits:
/// // prefopt::fused_linear_logps(hidden.view({-1, H}), model->lm_head_weight(), labels.view({-1}));
/// ```
class LlamaForCausalLMImpl : public torch::nn::Cloneable<LlamaForCausalLMImpl> {
 public:
  /// Validates config and builds a randomly initialised model in float32 on the CPU.
  explicit LlamaForCausalLMImpl(LlamaConfig config);
  /// Rebuilds every submodule, freshly initialised (used by clone()).
  void reset() override;
  /// Re-draws every parameter as a new model's (see above), in place.
  void reset_parameters();

  /// Logits [B, T, vocab_size] in the parameters' dtype: logits(hidden_states(...)).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& position_ids = {});
  /// Final hidden states [B, T, hidden_size] (after the last norm, before lm_head), in the parameters' dtype.
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                              const torch::Tensor& position_ids = {});
  /// hidden [..., hidden_size] -> logits [..., vocab_size] (hidden @ lm_head_weight()^T).
  torch::Tensor logits(const torch::Tensor& hidden);
  /// The output projection [vocab_size, hidden_size], the very parameter the logits use (the embedding's weight
  /// when tied), so a loss computed from it sends gradients to the model.
  torch::Tensor lm_head_weight() const;

  const LlamaConfig& config() const { return config_; }

  LlamaModel model{nullptr};
  /// Empty (nullptr) when config.tie_word_embeddings.
  torch::nn::Linear lm_head{nullptr};

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaForCausalLM);

/// How load_llama builds the model.
struct LlamaLoadOptions {
  /// Parameters' dtype; checkpoint tensors (F32, BF16, F16 or F64) are converted to it.
  TORCH_ARG(torch::Dtype, dtype) = torch::kFloat32;
  TORCH_ARG(torch::Device, device) = torch::kCPU;
};

/// Loads a Hugging Face checkpoint folder: config.json (LlamaConfig::from_json_file) and the weights from
/// model.safetensors or, when that file is absent, model.safetensors.index.json and the shards its weight_map
/// names (plain file names in the same folder). Every parameter must be found with its exact shape; checkpoint
/// tensors that are not parameters raise an error, except rotary "inv_freq" buffers of older checkpoints and
/// lm_head.weight of a tied model (as transformers, which ties it to the embedding). Errors name the file and
/// the tensor. PyTorch .bin checkpoints are not read.
///
/// Example:
/// ```
/// auto model = prefopt::load_llama("Llama-3.2-1B", prefopt::LlamaLoadOptions().dtype(torch::kBFloat16));
/// model->eval();
/// ```
LlamaForCausalLM load_llama(const std::string& directory, const LlamaLoadOptions& options = {});

/// Loads the weights of a checkpoint folder (as load_llama) into an existing model with the same structure.
void load_llama_weights(LlamaForCausalLMImpl& model, const std::string& directory);

/// Writes config.json and model.safetensors (the parameters in their dtype, Hugging Face's names; no lm_head
/// tensor when tied) into directory, creating it; the result loads with load_llama and with transformers'
/// from_pretrained. Files are written to a temporary name and renamed, so a failure leaves no partial file.
///
/// Example:
/// ```
/// prefopt::save_llama(*model, "out/final");
/// ```
void save_llama(const LlamaForCausalLMImpl& model, const std::string& directory);

}  // namespace prefopt::model
