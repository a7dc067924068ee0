// The Llama-family decoder (RMSNorm, rotary embeddings, SwiGLU, grouped-query attention) and the loading and
// saving of Hugging Face checkpoint folders. The arithmetic follows transformers' modeling_llama.py step for step
// (float32 norm statistics, float32 rotary angles cast to the model's dtype) so that float32 logits agree to
// rounding. It never forms a [B, T, T] float mask (a bool mask, only when there is padding) and never reads a
// tensor before every name, shape and dtype of the checkpoint has been checked.
#include <prefopt/model/llama.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include "../common/files.h"
#include "checkpoint_io.h"
#include "layer_checkpoint.h"

namespace prefopt::model {
namespace {

constexpr double kPi = 3.14159265358979323846;  // Python's math.pi

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

// transformers' inverse frequencies, computed in float32 as it does, with rope scaling applied.
torch::Tensor rotary_inv_freq(const LlamaConfig& config) {
  const int64_t dim = config.resolved_head_dim();
  const torch::Tensor exponents = torch::arange(0, dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim);
  torch::Tensor inv_freq = 1.0 / torch::pow(config.rope_theta(), exponents);
  const RopeScaling& s = config.rope_scaling();
  if (s.rope_type() == RopeType::kLinear) {
    inv_freq = inv_freq / s.factor();
  } else if (s.rope_type() == RopeType::kLlama3) {
    const double old_context = static_cast<double>(s.original_max_position_embeddings());
    const double low_freq_wavelen = old_context / s.low_freq_factor();
    const double high_freq_wavelen = old_context / s.high_freq_factor();
    const torch::Tensor wavelen = 2 * kPi / inv_freq;
    torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor(), inv_freq);
    const torch::Tensor smooth = (old_context / wavelen - s.low_freq_factor()) / (s.high_freq_factor() - s.low_freq_factor());
    const torch::Tensor smoothed = (1 - smooth) * scaled / s.factor() + smooth * scaled;
    const torch::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
    scaled = torch::where(medium, smoothed, scaled);
    inv_freq = scaled;
  }
  return inv_freq.contiguous();
}

// Dynamic NTK scaling for a forward whose positions reach `seq_len` (max position + 1), computed as transformers
// does it, in float32 tensors: theta' = theta * (factor * seq_len / M - (factor - 1))^(d / (d - 2)).
torch::Tensor dynamic_inv_freq(const LlamaConfig& config, int64_t seq_len) {
  const int64_t dim = config.resolved_head_dim();
  const double factor = config.rope_scaling().factor();
  const int64_t m = config.max_position_embeddings();
  const torch::Tensor length = torch::tensor(std::max(seq_len, m), torch::kLong);
  const torch::Tensor base = config.rope_theta() * torch::pow(factor * length / static_cast<double>(m) - (factor - 1),
                                                               static_cast<double>(dim) / static_cast<double>(dim - 2));
  const torch::Tensor exponents = torch::arange(0, dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim);
  return (1.0 / torch::pow(base, exponents)).contiguous();
}

// [B or 1, 1, T, S] bool: which of the S keys (the cache's `offset` earlier positions, then the T new ones) each
// of the T new queries may attend: causal, real keys only (key_real [B, S], undefined = all real), and within
// `window` positions when window > 0. A query that may see no key at all attends to itself, so softmax over an
// empty set never makes NaN. Undefined when plain causal attention over T = S positions says the same.
torch::Tensor attention_mask_of(const torch::Tensor& key_real, int64_t offset, int64_t T, int64_t window,
                             const torch::TensorOptions& options) {
  const int64_t S = offset + T;
  const bool sliding = window > 0 && S > window;
  if (!key_real.defined() && !sliding && (offset == 0 || T == 1)) return {};
  const auto long_opts = options.dtype(torch::kLong);
  const torch::Tensor q = torch::arange(offset, S, long_opts).unsqueeze(1);  // [T, 1] absolute query indices
  const torch::Tensor k = torch::arange(S, long_opts).unsqueeze(0);          // [1, S]
  torch::Tensor allowed = k.le(q);
  if (sliding) allowed = allowed.logical_and(k.gt(q - window));
  allowed = allowed.unsqueeze(0);  // [1, T, S]
  if (key_real.defined()) allowed = allowed.logical_and(key_real.unsqueeze(1));  // [B, T, S]
  const torch::Tensor none = allowed.any(-1, /*keepdim=*/true).logical_not();
  allowed = allowed.logical_or(none.logical_and(k.eq(q).unsqueeze(0)));
  return allowed.unsqueeze(1);
}

using io::shape_string;

// Attention of a packed row, one sequence at a time: q [1, heads, S, hd], k and v [1, heads, S, hd] (key/value heads
// already repeated). Each sequence's slice runs causal scaled_dot_product_attention (a window mask of its own when
// it is longer than the window), so no [S, S] mask exists and no query meets another sequence's keys.
torch::Tensor packed_attention_per_sequence(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const PackedAttention& packed) {
  const auto offsets = packed.cu_seqlens.accessor<int64_t, 1>();
  std::vector<torch::Tensor> outs;
  outs.reserve(static_cast<size_t>(offsets.size(0)));
  for (int64_t i = 0; i + 1 < offsets.size(0); ++i) {
    const int64_t begin = offsets[i], length = offsets[i + 1] - begin;
    if (length == 0) continue;
    const torch::Tensor mask = attention_mask_of({}, 0, length, packed.window, q.options());
    std::optional<torch::Tensor> attn_mask;
    if (mask.defined()) attn_mask = mask;
    outs.push_back(at::scaled_dot_product_attention(q.narrow(2, begin, length), k.narrow(2, begin, length),
                                                    v.narrow(2, begin, length), attn_mask, /*dropout_p=*/0.0,
                                                    /*is_causal=*/!mask.defined() && length > 1));
  }
  return torch::cat(outs, 2);
}

// ATen's variable-length flash attention over the whole packed row (CUDA, bf16/fp16): q [S, heads, hd], k and v
// [S, kv_heads, hd] (flash attention serves grouped-query heads itself). Returns [S, heads, hd], or an undefined
// tensor when this build or device cannot run it (the caller falls back, and says so once).
torch::Tensor packed_attention_varlen(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const PackedAttention& packed) {
  const auto dtype = q.scalar_type();
  if (!q.is_cuda() || (dtype != torch::kBFloat16 && dtype != torch::kHalf) || q.size(-1) % 8 != 0 ||
      q.size(-1) > 256) {
    return {};
  }
  const torch::Tensor& offsets = packed.cu_seqlens;
  const int64_t max_length = (offsets.slice(0, 1) - offsets.slice(0, 0, -1)).max().item<int64_t>();
  const torch::Tensor cu = offsets.to(q.device(), torch::kInt);
  try {
    // Window w: key j is visible to query i when i - w < j <= i, flash attention's (w - 1, 0) window.
    const std::optional<int64_t> left = packed.window > 0 ? std::optional<int64_t>(packed.window - 1) : std::nullopt;
    const std::optional<int64_t> right = packed.window > 0 ? std::optional<int64_t>(0) : std::nullopt;
    return std::get<0>(at::_flash_attention_forward(q, k, v, cu, cu, max_length, max_length, /*dropout_p=*/0.0,
                                                    /*is_causal=*/true, /*return_debug_mask=*/false,
                                                    /*scale=*/std::nullopt, left, right));
  } catch (const c10::Error& e) {
    TORCH_WARN_ONCE("packed attention: ATen's variable-length flash attention is not available here (",
                    e.what_without_backtrace(), "); running scaled_dot_product_attention per sequence instead");
    return {};
  }
}

}  // namespace

// ---- adapter updates ----

torch::Tensor ProjectionUpdates::apply(const std::string& name, torch::nn::Linear& linear,
                                       const torch::Tensor& x) const {
  torch::Tensor out = linear(x);
  if (!enabled || by_name.empty()) return out;
  const auto found = by_name.find(name);
  if (found == by_name.end()) return out;
  return out + found->second->forward(x);
}

std::vector<torch::Tensor> ProjectionUpdates::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& [name, update] : by_name) {
    for (const auto& p : update->parameters()) out.push_back(p);
  }
  return out;
}

// ---- RMSNorm ----

RMSNormImpl::RMSNormImpl(int64_t size, double eps) : size_(size), eps_(eps) { reset(); }

void RMSNormImpl::reset() { weight = register_parameter("weight", torch::ones({size_})); }

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  const auto dtype = x.scalar_type();
  const torch::Tensor x32 = x.to(torch::kFloat);
  const torch::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x32 * torch::rsqrt(variance + eps_)).to(dtype);
}

// ---- attention ----

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& config) : config_(config) { reset(); }

void LlamaAttentionImpl::reset() {
  const int64_t hidden = config_.hidden_size(), hd = config_.resolved_head_dim();
  const int64_t heads = config_.num_attention_heads(), kv_heads = config_.num_key_value_heads();
  const bool bias = config_.qkv_bias();
  q_proj = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, heads * hd).bias(bias)));
  k_proj = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, kv_heads * hd).bias(bias)));
  v_proj = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, kv_heads * hd).bias(bias)));
  o_proj = register_module("o_proj",
                           torch::nn::Linear(torch::nn::LinearOptions(heads * hd, hidden).bias(config_.o_bias())));
  updates = ProjectionUpdates();
  if (config_.qk_norm()) {
    q_norm = register_module("q_norm", RMSNorm(hd, config_.rms_norm_eps()));
    k_norm = register_module("k_norm", RMSNorm(hd, config_.rms_norm_eps()));
  } else {
    q_norm = nullptr;
    k_norm = nullptr;
  }
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& mask, KVCache* cache, int64_t layer,
                                          const PackedAttention* packed) {
  const int64_t B = x.size(0), T = x.size(1), hd = config_.resolved_head_dim();
  const int64_t heads = config_.num_attention_heads(), kv_heads = config_.num_key_value_heads();
  torch::Tensor q = updates.apply("q_proj", q_proj, x).view({B, T, heads, hd});
  torch::Tensor k = updates.apply("k_proj", k_proj, x).view({B, T, kv_heads, hd});
  if (q_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  torch::Tensor v = updates.apply("v_proj", v_proj, x).view({B, T, kv_heads, hd}).transpose(1, 2);
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  if (packed != nullptr) {
    TORCH_CHECK(B == 1 && cache == nullptr && !mask.defined(),
                "packed attention takes one row, no cache and no mask, got ", B, " rows");
    const torch::Tensor flash =
        packed_attention_varlen(q[0].transpose(0, 1), k[0].transpose(0, 1), v[0].transpose(0, 1), *packed);
    if (flash.defined()) return updates.apply("o_proj", o_proj, flash.reshape({1, T, heads * hd}));
  }
  if (cache != nullptr) {
    const int64_t start = cache->length;
    auto& keys = cache->keys[static_cast<size_t>(layer)];
    auto& values = cache->values[static_cast<size_t>(layer)];
    keys.narrow(2, start, T).copy_(k);
    values.narrow(2, start, T).copy_(v);
    k = keys.narrow(2, 0, start + T);
    v = values.narrow(2, 0, start + T);
  }
  const int64_t S = k.size(2);
  if (kv_heads != heads) {
    // Each key/value head serves `groups` consecutive query heads (transformers' repeat_kv).
    const int64_t groups = heads / kv_heads;
    k = k.unsqueeze(2).expand({B, kv_heads, groups, S, hd}).reshape({B, heads, S, hd});
    v = v.unsqueeze(2).expand({B, kv_heads, groups, S, hd}).reshape({B, heads, S, hd});
  }
  torch::Tensor out;
  if (packed != nullptr) {
    out = packed_attention_per_sequence(q, k, v, *packed);
  } else {
    std::optional<torch::Tensor> attn_mask;
    if (mask.defined()) attn_mask = mask;
    // Without a mask the attention is plain causal over T == S positions (or one query seeing every key).
    out = at::scaled_dot_product_attention(q, k, v, attn_mask, /*dropout_p=*/0.0,
                                           /*is_causal=*/!mask.defined() && T > 1);
  }
  return updates.apply("o_proj", o_proj, out.transpose(1, 2).reshape({B, T, heads * hd}));
}

// ---- MLP ----

LlamaMLPImpl::LlamaMLPImpl(const LlamaConfig& config) : config_(config) { reset(); }

void LlamaMLPImpl::reset() {
  const int64_t hidden = config_.hidden_size(), inter = config_.intermediate_size();
  const bool bias = config_.mlp_bias();
  gate_proj = register_module("gate_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, inter).bias(bias)));
  up_proj = register_module("up_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, inter).bias(bias)));
  down_proj = register_module("down_proj", torch::nn::Linear(torch::nn::LinearOptions(inter, hidden).bias(bias)));
  updates = ProjectionUpdates();
}

torch::Tensor LlamaMLPImpl::forward(const torch::Tensor& x) {
  return updates.apply("down_proj", down_proj,
                       at::silu(updates.apply("gate_proj", gate_proj, x)) * updates.apply("up_proj", up_proj, x));
}

// ---- decoder layer ----

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& config) : config_(config) { reset(); }

void LlamaDecoderLayerImpl::reset() {
  self_attn = register_module("self_attn", LlamaAttention(config_));
  mlp = register_module("mlp", LlamaMLP(config_));
  input_layernorm = register_module("input_layernorm", RMSNorm(config_.hidden_size(), config_.rms_norm_eps()));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(config_.hidden_size(), config_.rms_norm_eps()));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                             const torch::Tensor& sin, const torch::Tensor& mask, KVCache* cache,
                                             int64_t layer, const PackedAttention* packed) {
  const torch::Tensor h = x + self_attn->forward(input_layernorm(x), cos, sin, mask, cache, layer, packed);
  return h + mlp(post_attention_layernorm(h));
}

// ---- decoder body ----

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& config) : config_(config) { reset(); }

void LlamaModelImpl::reset() {
  auto embedding = torch::nn::EmbeddingOptions(config_.vocab_size(), config_.hidden_size());
  if (config_.pad_token_id()) embedding.padding_idx(*config_.pad_token_id());
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(embedding));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_hidden_layers(); ++i) layers->push_back(LlamaDecoderLayer(config_));
  norm = register_module("norm", RMSNorm(config_.hidden_size(), config_.rms_norm_eps()));
  inv_freq_ = rotary_inv_freq(config_);
  embed_tokens_override = torch::Tensor();
  adapters_enabled = true;
}

torch::Tensor LlamaModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                      const torch::Tensor& position_ids, KVCache* cache,
                                      const torch::Tensor& cu_seqlens) {
  TORCH_CHECK(input_ids.defined() && input_ids.dim() == 2, "input_ids must have shape [B, T], got ",
              input_ids.defined() ? shape_string(input_ids.sizes()) : std::string("an undefined tensor"));
  TORCH_CHECK(at::isIntegralType(input_ids.scalar_type(), /*includeBool=*/false),
              "input_ids must hold integer token ids, got dtype ", input_ids.scalar_type());
  const torch::Tensor& weight = embed_tokens->weight;
  TORCH_CHECK(input_ids.device() == weight.device(), "input_ids must be on the model's device (", weight.device(),
              "), got ", input_ids.device());
  const int64_t B = input_ids.size(0), T = input_ids.size(1), V = config_.vocab_size();
  const torch::Tensor ids = input_ids.to(torch::kLong);
  if (ids.numel() > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < V, "input_ids must be in [0, vocab_size = ", V, "), got values in [", lo, ", ", hi,
                "]");
  }
  const int64_t offset = cache != nullptr ? cache->length : 0;
  if (cache != nullptr) {
    TORCH_CHECK(static_cast<int64_t>(cache->keys.size()) == config_.num_hidden_layers() &&
                    cache->values.size() == cache->keys.size() && cache->key_mask.defined(),
                "the KV cache was not made for this model (use new_cache)");
    TORCH_CHECK(cache->key_mask.size(0) == B, "the KV cache holds ", cache->key_mask.size(0),
                " rows but input_ids has ", B);
    TORCH_CHECK(offset >= 0 && offset + T <= cache->capacity(), "the KV cache holds ", cache->capacity(),
                " positions; ", offset, " are filled and ", T, " more do not fit");
    // The cache's buffers are written in place: under autograd they would join (and keep alive) every graph.
    TORCH_CHECK(!at::GradMode::is_enabled(), "forward_cached records no gradient; call it under torch::NoGradGuard");
  }

  torch::Tensor keys;  // [B, T] bool, true on real tokens; undefined: every token real
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == T,
                "attention_mask must have shape [B, T] matching input_ids ", shape_string(input_ids.sizes()), ", got ",
                shape_string(attention_mask.sizes()));
    TORCH_CHECK(at::isIntegralType(attention_mask.scalar_type(), /*includeBool=*/true),
                "attention_mask must be bool or integer 0/1, got dtype ", attention_mask.scalar_type());
    TORCH_CHECK(attention_mask.device() == weight.device(), "attention_mask must be on the model's device (",
                weight.device(), "), got ", attention_mask.device());
    keys = attention_mask;
    if (keys.scalar_type() != torch::kBool) {
      TORCH_CHECK(keys.numel() == 0 || ((keys == 0).logical_or(keys == 1)).all().item<bool>(),
                  "attention_mask must hold only 0 and 1");
      keys = keys != 0;
    }
    if (keys.numel() > 0 && keys.all().item<bool>()) keys = torch::Tensor();
  }
  torch::Tensor offsets;  // packed rows: [N + 1] int64 on the CPU
  if (cu_seqlens.defined()) {
    TORCH_CHECK(B == 1, "packed input_ids must be one row [1, S], got ", shape_string(input_ids.sizes()));
    TORCH_CHECK(cache == nullptr && !attention_mask.defined(),
                "packed sequences take no attention_mask and no cache (cu_seqlens says where each sequence is)");
    TORCH_CHECK(position_ids.defined(),
                "packed sequences need position_ids (each sequence's positions counting from 0)");
    TORCH_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.size(0) >= 1 &&
                    at::isIntegralType(cu_seqlens.scalar_type(), /*includeBool=*/false),
                "cu_seqlens must be [N + 1] integers, got ", shape_string(cu_seqlens.sizes()), " ",
                cu_seqlens.scalar_type());
    offsets = cu_seqlens.to(torch::kCPU, torch::kLong).contiguous();
    const auto o = offsets.accessor<int64_t, 1>();
    TORCH_CHECK(o[0] == 0 && o[o.size(0) - 1] == T, "cu_seqlens must run from 0 to the row's length ", T, ", got ",
                o[0], " .. ", o[o.size(0) - 1]);
    for (int64_t i = 1; i < o.size(0); ++i) {
      TORCH_CHECK(o[i] >= o[i - 1], "cu_seqlens must be non-decreasing, got ", o[i], " after ", o[i - 1],
                  " at index ", i);
    }
  }
  torch::Tensor key_real = keys;  // over all S = offset + T keys
  if (cache != nullptr) {
    cache->key_mask.narrow(1, offset, T).copy_(keys.defined() ? keys : torch::ones({B, T}, cache->key_mask.options()));
    const torch::Tensor seen = cache->key_mask.narrow(1, 0, offset + T);
    key_real = seen.all().item<bool>() ? torch::Tensor() : seen;
  }

  torch::Tensor positions;
  if (position_ids.defined()) {
    TORCH_CHECK(position_ids.dim() == 2 && (position_ids.size(0) == B || position_ids.size(0) == 1) &&
                    position_ids.size(1) == T,
                "position_ids must have shape [B, T] or [1, T] with B, T of input_ids ", shape_string(input_ids.sizes()),
                ", got ", shape_string(position_ids.sizes()));
    TORCH_CHECK(at::isIntegralType(position_ids.scalar_type(), /*includeBool=*/false),
                "position_ids must be integers, got dtype ", position_ids.scalar_type());
    positions = position_ids.to(weight.device());
  } else {
    positions = torch::arange(offset, offset + T, ids.options()).unsqueeze(0);
  }

  torch::Tensor hidden;
  if (embed_tokens_override.defined() && adapters_enabled) {
    const auto padding = embed_tokens->options.padding_idx();
    hidden = at::embedding(embed_tokens_override, ids, padding ? *padding : -1);
  } else {
    hidden = embed_tokens(ids);
  }
  if (B == 0 || T == 0) return norm(hidden);
  torch::Tensor inv_freq = inv_freq_;
  if (config_.rope_scaling().rope_type() == RopeType::kDynamic) {
    // transformers keeps the unscaled frequencies up to max_position_embeddings.
    const int64_t seq_len = positions.max().item<int64_t>() + 1;
    if (seq_len > config_.max_position_embeddings()) inv_freq = dynamic_inv_freq(config_, seq_len);
  }
  // Angles in float32 whatever the model's dtype, then cos/sin cast to it (transformers' LlamaRotaryEmbedding).
  const torch::Tensor freqs = positions.unsqueeze(-1).to(torch::kFloat) * inv_freq.to(weight.device());
  const torch::Tensor angles = torch::cat({freqs, freqs}, -1);  // [B or 1, T, head_dim]
  const torch::Tensor cos = angles.cos().to(hidden.scalar_type()).unsqueeze(1);
  const torch::Tensor sin = angles.sin().to(hidden.scalar_type()).unsqueeze(1);

  // One mask per distinct window (full attention is window 0), built once for all layers that share it.
  std::map<int64_t, torch::Tensor> masks;
  const bool checkpoint = gradient_checkpointing_ && is_training() && at::GradMode::is_enabled() && cache == nullptr;
  for (int64_t i = 0; i < static_cast<int64_t>(layers->size()); ++i) {
    const int64_t window = config_.layer_sliding_window(i);
    auto* layer = layers[static_cast<size_t>(i)]->as<LlamaDecoderLayerImpl>();
    if (offsets.defined()) {
      const PackedAttention packed{offsets, window};
      hidden = checkpoint ? detail::checkpointed_layer(*layer, hidden, cos, sin, {}, &packed)
                          : layer->forward(hidden, cos, sin, {}, nullptr, i, &packed);
      continue;
    }
    auto found = masks.find(window);
    if (found == masks.end()) {
      found = masks.emplace(window, attention_mask_of(key_real, offset, T, window, ids.options())).first;
    }
    hidden = checkpoint ? detail::checkpointed_layer(*layer, hidden, cos, sin, found->second)
                        : layer->forward(hidden, cos, sin, found->second, cache, i);
  }
  if (cache != nullptr) cache->length = offset + T;
  return norm(hidden);
}

// ---- causal LM ----

LlamaForCausalLMImpl::LlamaForCausalLMImpl(LlamaConfig config) : config_(std::move(config)) { reset(); }

void LlamaForCausalLMImpl::reset() {
  config_.validate();
  TORCH_CHECK(config_.num_labels() == 0, "LlamaForCausalLM: the config describes ", config_.architecture_name(),
              " (num_labels ", config_.num_labels(), "); build a LlamaForSequenceClassification from it instead");
  model = register_module("model", LlamaModel(config_));
  if (!config_.tie_word_embeddings()) {
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size(), config_.vocab_size()).bias(false)));
  } else {
    lm_head = nullptr;
  }
  lm_head_override = torch::Tensor();
  reset_parameters();
}

void LlamaForCausalLMImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double std = config_.initializer_range();
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::LinearImpl>()) {
      torch::nn::init::normal_(linear->weight, 0.0, std);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding = module->as<torch::nn::EmbeddingImpl>()) {
      torch::nn::init::normal_(embedding->weight, 0.0, std);
      if (config_.pad_token_id()) embedding->weight[*config_.pad_token_id()].zero_();
    } else if (auto* rms = module->as<RMSNormImpl>()) {
      rms->weight.fill_(1.0);
    }
  }
}

torch::Tensor LlamaForCausalLMImpl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                  const torch::Tensor& position_ids) {
  return model(input_ids, attention_mask, position_ids);
}

torch::Tensor LlamaForCausalLMImpl::logits(const torch::Tensor& hidden) {
  TORCH_CHECK(hidden.dim() >= 1 && hidden.size(-1) == config_.hidden_size(),
              "hidden must have shape [..., hidden_size = ", config_.hidden_size(), "], got ",
              shape_string(hidden.sizes()));
  return at::linear(hidden, lm_head_weight());
}

torch::Tensor LlamaForCausalLMImpl::lm_head_weight() const {
  if (lm_head_override.defined() && model->adapters_enabled) return lm_head_override;
  return config_.tie_word_embeddings() ? model->embed_tokens->weight : lm_head->weight;
}

torch::Tensor LlamaForCausalLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                            const torch::Tensor& position_ids) {
  return logits(hidden_states(input_ids, attention_mask, position_ids));
}

torch::Tensor LlamaForCausalLMImpl::hidden_states_packed(const torch::Tensor& input_ids,
                                                         const torch::Tensor& position_ids,
                                                         const torch::Tensor& cu_seqlens) {
  TORCH_CHECK(cu_seqlens.defined(), "hidden_states_packed needs cu_seqlens");
  return model->forward(input_ids, {}, position_ids, nullptr, cu_seqlens);
}

torch::Tensor LlamaForCausalLMImpl::forward_packed(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                                                   const torch::Tensor& cu_seqlens) {
  return logits(hidden_states_packed(input_ids, position_ids, cu_seqlens));
}

KVCache LlamaForCausalLMImpl::new_cache(int64_t batch, int64_t capacity) const {
  TORCH_CHECK(batch >= 1 && capacity >= 1, "new_cache: batch and capacity must be >= 1, got ", batch, " and ",
              capacity);
  const torch::Tensor& weight = model->embed_tokens->weight;
  const auto options = weight.options().requires_grad(false);
  KVCache cache;
  const int64_t kv_heads = config_.num_key_value_heads(), hd = config_.resolved_head_dim();
  for (int64_t i = 0; i < config_.num_hidden_layers(); ++i) {
    cache.keys.push_back(torch::zeros({batch, kv_heads, capacity, hd}, options));
    cache.values.push_back(torch::zeros({batch, kv_heads, capacity, hd}, options));
  }
  cache.key_mask = torch::zeros({batch, capacity}, options.dtype(torch::kBool));
  return cache;
}

torch::Tensor LlamaForCausalLMImpl::forward_cached(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                   const torch::Tensor& position_ids, KVCache& cache) {
  return logits(model->forward(input_ids, attention_mask, position_ids, &cache));
}

void LlamaForCausalLMImpl::set_gradient_checkpointing(bool enabled) { model->set_gradient_checkpointing(enabled); }

bool LlamaForCausalLMImpl::gradient_checkpointing() const { return model->gradient_checkpointing(); }

void LlamaForCausalLMImpl::set_adapters_enabled(bool enabled) {
  model->adapters_enabled = enabled;
  for (const auto& layer : *model->layers) {
    auto* block = layer->as<LlamaDecoderLayerImpl>();
    block->self_attn->updates.enabled = enabled;
    block->mlp->updates.enabled = enabled;
  }
}

bool LlamaForCausalLMImpl::adapters_enabled() const { return model->adapters_enabled; }

// ---- checkpoints ----

void load_llama_weights(LlamaForCausalLMImpl& model, const std::string& directory) {
  const bool tied = model.config().tie_word_embeddings();
  io::load_checkpoint_parameters(model, directory, model.config().architecture_name(), [tied](const std::string& name) {
    return tied && name == "lm_head.weight";  // transformers ties it to the embedding
  });
}

LlamaForCausalLM load_llama(const std::string& directory, const LlamaLoadOptions& options) {
  const std::string config_path = files::join(directory, "config.json");
  TORCH_CHECK(files::exists(config_path), "no config.json in '", directory, "'");
  const LlamaConfig config = LlamaConfig::from_json_file(config_path);
  TORCH_CHECK(config.num_labels() == 0, config_path, ": architectures names ", config.architecture_name(),
              ", a sequence classifier (load it with load_llama_sequence_classifier)");
  LlamaForCausalLM model(config);
  model->to(options.device(), options.dtype());
  load_llama_weights(*model, directory);
  return model;
}

void save_llama(const LlamaForCausalLMImpl& model, const std::string& directory, std::optional<torch::Dtype> dtype) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) tensors.emplace_back(item.key(), item.value());
  io::save_checkpoint_folder(tensors, model.config(), directory, dtype);
}

}  // namespace prefopt::model
