// LlamaForCausalLM: a decoder-only transformer of the Llama family (RMSNorm, rotary embeddings, SwiGLU MLP,
// grouped-query attention, tied or untied embeddings; Qwen2's biases, Qwen3's q/k norms, Mistral's sliding window)
// as a torch::nn::Module whose parameter names are those of Hugging Face's *ForCausalLM, plus loading and saving of
// Hugging Face checkpoint folders. It computes logits or final hidden states, of whole sequences or incrementally
// against a KVCache, optionally recomputing each layer's activations in the backward (activation checkpointing).
// It never applies dropout, never samples and never computes a loss (scoring does that from the logits or, without
// forming them, from hidden states).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

/// The keys and values of the positions a model has already seen, per layer, so that the next tokens' forward
/// computes only their own (incremental decoding; generate.h uses it). Keys are stored after the rotation, before
/// the key/value heads are repeated for grouped-query attention. Make one with LlamaForCausalLMImpl::new_cache;
/// forward_cached fills it.
struct KVCache {
  /// Per layer [B, num_key_value_heads, capacity, head_dim] in the model's dtype; positions [0, length) are filled.
  std::vector<torch::Tensor> keys, values;
  /// [B, capacity] bool: false at the filled positions that were padding (never attended to).
  torch::Tensor key_mask;
  /// Positions filled so far.
  int64_t length = 0;
  int64_t capacity() const { return key_mask.defined() ? key_mask.size(1) : 0; }
};

/// Attention confined to the sequences of a packed row (B = 1; a packed batch, prefopt/data/packing.h): sequence i
/// holds the row's positions [cu_seqlens[i], cu_seqlens[i + 1]), and each query attends causally to the keys of
/// its own sequence only (within `window` positions when window > 0), never across a boundary.
struct PackedAttention {
  /// [N + 1] int64 on the CPU, 0 = cu_seqlens[0] <= ... <= cu_seqlens[N] = the row's length.
  torch::Tensor cu_seqlens;
  /// The layer's sliding window (LlamaConfig::layer_sliding_window); 0: none.
  int64_t window = 0;
};

/// A trainable change an adapter (LoRA, lora.h) adds to one linear projection of the model: while the model's
/// adapters are enabled, the projection computes linear(x) + update->forward(x). The model holds updates without
/// owning their parameters: they are not among its parameters(), not in its checkpoints and not cloned.
class ProjectionUpdate {
 public:
  virtual ~ProjectionUpdate() = default;
  /// x: [..., in_features] -> [..., out_features], in x's dtype.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// The tensors it trains (activation checkpointing returns their gradients too).
  virtual std::vector<torch::Tensor> parameters() const = 0;
};

/// The adapter updates of one block's projections, by projection name ("q_proj", "gate_proj", ...), and whether
/// they apply. Cleared when the module is reset or cloned.
struct ProjectionUpdates {
  std::map<std::string, std::shared_ptr<ProjectionUpdate>> by_name;
  bool enabled = true;
  /// linear(x), plus the named update's output when there is one and updates are enabled.
  torch::Tensor apply(const std::string& name, torch::nn::Linear& linear, const torch::Tensor& x) const;
  std::vector<torch::Tensor> parameters() const;
};

/// Grouped-query causal self-attention with rotary embeddings: q_proj, k_proj, v_proj (biases for Qwen2 or with
/// attention_bias), o_proj (a bias with attention_bias), Qwen3's per-head q_norm and k_norm; each key/value head
/// serves num_attention_heads / num_key_value_heads query heads.
/// - x: [B, T, hidden_size]; cos, sin: [B or 1, 1, T, head_dim] in x's dtype; mask: undefined (plain causal over
///   the T positions) or [B, 1, T, S] bool, true where a query may attend a key, S = T without a cache and
///   cache length + T with one.
/// - cache, layer: when cache is given, this forward's keys and values are written at positions
///   [cache->length, cache->length + T) of layer `layer`'s tensors and the queries attend to all S of them (the
///   caller advances cache->length). Returns [B, T, hidden_size].
/// - packed: when given (then B = 1, no mask, no cache), attention runs per sequence of the packed row: on CUDA in
///   bf16/fp16 through ATen's variable-length flash attention, elsewhere (or where the build lacks it, with a
///   one-time warning) through scaled_dot_product_attention on each sequence's slice.
class LlamaAttentionImpl : public torch::nn::Cloneable<LlamaAttentionImpl> {
 public:
  explicit LlamaAttentionImpl(const LlamaConfig& config);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KVCache* cache = nullptr, int64_t layer = 0,
                        const PackedAttention* packed = nullptr);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  /// Qwen3 only (null otherwise): RMSNorm over head_dim of each query / key head.
  RMSNorm q_norm{nullptr}, k_norm{nullptr};
  /// Adapter updates of q_proj, k_proj, v_proj, o_proj.
  ProjectionUpdates updates;

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaAttention);

/// SwiGLU feed-forward: down_proj(silu(gate_proj(x)) * up_proj(x)), biases only with mlp_bias.
/// x: [..., hidden_size].
class LlamaMLPImpl : public torch::nn::Cloneable<LlamaMLPImpl> {
 public:
  explicit LlamaMLPImpl(const LlamaConfig& config);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  /// Adapter updates of gate_proj, up_proj, down_proj.
  ProjectionUpdates updates;

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaMLP);

/// One pre-norm block: h = x + self_attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
/// Arguments as LlamaAttentionImpl::forward.
class LlamaDecoderLayerImpl : public torch::nn::Cloneable<LlamaDecoderLayerImpl> {
 public:
  explicit LlamaDecoderLayerImpl(const LlamaConfig& config);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KVCache* cache = nullptr, int64_t layer = 0,
                        const PackedAttention* packed = nullptr);
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
  /// Arguments as LlamaForCausalLMImpl::hidden_states; with a cache, as LlamaForCausalLMImpl::forward_cached; with
  /// cu_seqlens, as LlamaForCausalLMImpl::hidden_states_packed.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& position_ids = {}, KVCache* cache = nullptr,
                        const torch::Tensor& cu_seqlens = {});
  /// See LlamaForCausalLMImpl::set_gradient_checkpointing.
  void set_gradient_checkpointing(bool enabled) { gradient_checkpointing_ = enabled; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  /// An adapter's trainable copy of the embedding matrix (PEFT's modules_to_save), used instead of
  /// embed_tokens->weight while adapters are enabled; undefined: none.
  torch::Tensor embed_tokens_override;
  bool adapters_enabled = true;

 private:
  LlamaConfig config_;
  bool gradient_checkpointing_ = false;
  // [head_dim / 2] float32 on the CPU: the rotary inverse frequencies, rope scaling applied. Not a buffer, so it
  // is neither saved nor converted to the model's dtype; it is moved to the inputs' device when used.
  torch::Tensor inv_freq_;
};
TORCH_MODULE(LlamaModel);

/// A Llama-family causal language model (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
/// MistralForCausalLM): the decoder plus lm_head, which is the embedding matrix itself when
/// config.tie_word_embeddings (then no lm_head submodule exists).
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
///
/// // incremental decoding: the prompt once, then one token at a time
/// torch::NoGradGuard no_grad;
/// auto cache = model->new_cache(/*batch=*/1, /*capacity=*/16);
/// auto first = model->forward_cached(ids.slice(0, 1, 2), {}, {}, cache);  // [1, 4, V]; cache.length == 4
/// auto next = model->forward_cached(first.select(1, -1).argmax(-1).unsqueeze(1), {}, {}, cache);  // [1, 1, V]
///
/// // training a long sequence in less memory
/// model->set_gradient_checkpointing(true);
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
  /// Final hidden states [1, S, hidden_size] of packed sequences (prefopt/data/packing.h): N sequences laid end to
  /// end in one row, attention confined to each (PackedAttention), so every sequence's hidden states equal those of
  /// an unpadded forward of that sequence alone, up to float rounding, and no padding is computed.
  /// - input_ids: [1, S] integers; position_ids: [1, S] integers, each sequence's counting from 0 (the rotary
  ///   positions; packing.h's position_ids); cu_seqlens: [N + 1] int64 (moved to the CPU), 0 = cu_seqlens[0] <=
  ///   ... <= cu_seqlens[N] = S.
  torch::Tensor hidden_states_packed(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                                     const torch::Tensor& cu_seqlens);
  /// Logits [1, S, vocab_size] of packed sequences: logits(hidden_states_packed(...)).
  torch::Tensor forward_packed(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                               const torch::Tensor& cu_seqlens);
  /// hidden [..., hidden_size] -> logits [..., vocab_size] (hidden @ lm_head_weight()^T).
  torch::Tensor logits(const torch::Tensor& hidden);
  /// The output projection [vocab_size, hidden_size], the very tensor the logits use (the embedding's weight
  /// when tied; lm_head_override while adapters are enabled and it is set), so a loss computed from it sends
  /// gradients to the model.
  torch::Tensor lm_head_weight() const;

  /// An empty cache for `batch` rows and up to `capacity` positions, in the parameters' dtype and on their device
  /// (2 * layers * batch * capacity * num_key_value_heads * head_dim elements).
  KVCache new_cache(int64_t batch, int64_t capacity) const;
  /// Logits [B, T, vocab_size] of T new tokens per row that follow the cache->length positions already in the
  /// cache, whose keys and values this call appends (cache->length grows by T). No gradient is recorded through
  /// the cache; call it under torch::NoGradGuard.
  /// - input_ids: [B, T] integers; B the cache's batch; cache->length + T <= its capacity.
  /// - attention_mask: undefined (all real) or [B, T] 0/1: 0 marks a padding token no later query attends to
  ///   (left padding of the prompt, or a finished row's filler).
  /// - position_ids: [B, T] or [1, T] integers (the rotary positions; with left padding, count from each row's
  ///   first real token); undefined: cache->length + 0..T-1.
  /// Logits equal forward() on the whole sequence at the same positions, up to float rounding.
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& position_ids, KVCache& cache);

  /// Activation checkpointing (transformers' gradient_checkpointing_enable): while enabled, in train mode with
  /// gradients recorded, each decoder layer keeps only its input from the forward and recomputes its activations
  /// in the backward (with the forward's autocast state and random state), trading about one extra forward for
  /// the memory of every layer's intermediate tensors. Gradients equal the plain run's up to float rounding.
  /// The module must outlive the backward of a forward run with it.
  void set_gradient_checkpointing(bool enabled);
  bool gradient_checkpointing() const;

  /// Switches every adapter update (ProjectionUpdate, lm_head_override, embed_tokens_override) on or off; off,
  /// the model computes with its own weights only. TRL's reference for a PEFT model is the policy with its
  /// adapters off, which prefopt's trainer takes the same way. See AdaptersDisabled.
  void set_adapters_enabled(bool enabled);
  bool adapters_enabled() const;

  /// An adapter's trainable copy of the output projection [vocab_size, hidden_size] (PEFT's modules_to_save),
  /// which lm_head_weight() returns while adapters are enabled; undefined: none.
  torch::Tensor lm_head_override;

  const LlamaConfig& config() const { return config_; }

  LlamaModel model{nullptr};
  /// Empty (nullptr) when config.tie_word_embeddings.
  torch::nn::Linear lm_head{nullptr};

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaForCausalLM);

/// Turns a model's adapters off for a scope and restores their previous state after (the reference forward of a
/// LoRA policy).
///
/// Example:
/// ```
/// {
///   prefopt::AdaptersDisabled off(*model);
///   auto ref_logits = model->forward(ids, mask);  // the base model's
/// }
/// ```
class AdaptersDisabled {
 public:
  explicit AdaptersDisabled(LlamaForCausalLMImpl& model) : model_(model), was_(model.adapters_enabled()) {
    model_.set_adapters_enabled(false);
  }
  ~AdaptersDisabled() { model_.set_adapters_enabled(was_); }
  AdaptersDisabled(const AdaptersDisabled&) = delete;
  AdaptersDisabled& operator=(const AdaptersDisabled&) = delete;

 private:
  LlamaForCausalLMImpl& model_;
  bool was_;
};

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

/// Writes config.json and model.safetensors (the parameters in their dtype, or converted to `dtype` when given;
/// Hugging Face's names; no lm_head tensor when tied) into directory, creating it; the result loads with
/// load_llama and with transformers' from_pretrained. Files are written to a temporary name and renamed, so a
/// failure leaves no partial file.
///
/// Example:
/// ```
/// prefopt::save_llama(*model, "out/final");
/// prefopt::save_llama(*model, "out/final-bf16", torch::kBFloat16);  // fp32 training, bf16 weights on disk
/// ```
void save_llama(const LlamaForCausalLMImpl& model, const std::string& directory,
                std::optional<torch::Dtype> dtype = std::nullopt);

}  // namespace prefopt::model
