// Sampling completions from a LlamaForCausalLM: batched greedy decoding and temperature / top-k / top-p sampling,
// stopping each row at a stop token or after max_new_tokens. With the KV cache (the default) the prompts run once
// (prefill) and each step feeds only the new token; without it each step re-runs the whole sequence (the reference
// the cache is tested against). It never computes gradients, never changes the model's train/eval mode and never
// reads or writes a tokenizer's text.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/types.h>

#include <prefopt/model/llama.h>

namespace prefopt::model {

/// Options of generate.
struct GenerateOptions {
  /// Tokens generated at most per row (>= 1); a row stops earlier when it emits a token of eos_token_ids.
  TORCH_ARG(int64_t, max_new_tokens) = 32;
  /// 0: greedy (argmax of the logits; ties go to the lowest id). > 0: sample from softmax(logits / temperature).
  TORCH_ARG(double, temperature) = 0.0;
  /// Sampling only: keep the top_k most likely tokens (0 = the whole vocabulary); ignored when greedy.
  TORCH_ARG(int64_t, top_k) = 0;
  /// Sampling only, after top_k: keep the smallest set of most likely tokens whose probabilities (after the
  /// temperature) add up to at least top_p, at least one token (transformers' TopPLogitsWarper). 1 = off.
  TORCH_ARG(double, top_p) = 1.0;
  /// Keep the keys and values of earlier positions (prefill once, then one token per step). false re-runs the
  /// full forward every step: the same tokens (greedy: identical ids), slower.
  TORCH_ARG(bool, use_cache) = true;
  /// Stop tokens: each ends its row (emitted, then the row stops). Empty: rows run to max_new_tokens.
  TORCH_ARG(std::vector<int64_t>, eos_token_ids) = {};
  /// The id written after a row has stopped, in GenerateOutput::sequences (and fed to the model, masked out).
  TORCH_ARG(int64_t, pad_token_id) = 0;
  /// The random source of sampling; nullopt uses ATen's default generator of the model's device (seeded by
  /// torch::manual_seed). Pass at::make_generator<at::CPUGeneratorImpl>(seed) for a reproducible stream of
  /// its own. Unused when greedy.
  TORCH_ARG(std::optional<at::Generator>, generator) = std::nullopt;
};

/// Result of generate, for B prompts and N = the number of steps taken (<= max_new_tokens; fewer when every row
/// stopped early).
struct GenerateOutput {
  /// [B, N] int64 on the model's device: row b's generated ids, its EOS included, then pad_token_id.
  torch::Tensor sequences;
  /// [B] int64: how many ids of sequences[b] were generated (its EOS included).
  torch::Tensor lengths;
  /// [B] bool: true where the row emitted an EOS (false: it was cut at max_new_tokens).
  torch::Tensor finished;
  /// Row b's generated ids on the host, without the EOS and the padding.
  std::vector<std::vector<int64_t>> completions;
};

/// Generates completions of a batch of prompts.
///
/// - input_ids: [B, P] integers, B >= 1, P >= 1, every id in [0, vocab_size), on the model's device.
/// - attention_mask: undefined (every token real) or [B, P] bool / integer 0/1, right-padded as prefopt's
///   collators produce (each row 1 on its first L >= 1 positions, then 0) or left-padded as transformers'
///   generate expects (0 first, then 1 on the last L). Internally the prompts are left-padded with position ids
///   counted from each row's first real token, so a padded row gets the very logits it would get alone.
/// - returns GenerateOutput (above). No gradient is recorded.
///
/// Bad arguments raise an error naming them (shape, dtype, range, padding side, max_new_tokens, temperature,
/// top_k, top_p, a stop or pad id outside the vocabulary).
///
/// Example:
/// ```
/// prefopt::data::ByteTokenizer tok;
/// auto ids = torch::tensor({{257, '1', '+', '2', '='}, {257, '9', '=', 256, 256}}, torch::kLong);
/// auto mask = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}, torch::kLong);
/// auto out = prefopt::generate(*model, ids, mask,
///                              prefopt::GenerateOptions().max_new_tokens(8).eos_token_ids({tok.kEosId})
///                                  .pad_token_id(tok.kPadId).temperature(1.0).top_k(20).top_p(0.9)
///                                  .generator(at::make_generator<at::CPUGeneratorImpl>(42)));
/// out.sequences;           // [2, N]
/// tok.decode(out.completions[0], true);
/// ```
GenerateOutput generate(LlamaForCausalLMImpl& model, const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask = {}, const GenerateOptions& options = {});

/// The same for prompts given as id lists (each non-empty), padded here. Rows of different lengths are fine.
///
/// Example:
/// ```
/// auto out = prefopt::generate(*model, {{257, '1', '+', '2', '='}, {257, '7', '='}},
///                              prefopt::GenerateOptions().max_new_tokens(4).eos_token_ids({258}).pad_token_id(256));
/// ```
GenerateOutput generate(LlamaForCausalLMImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& options = {});

}  // namespace prefopt::model
