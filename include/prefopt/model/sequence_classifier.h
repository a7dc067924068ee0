// LlamaForSequenceClassification: the Llama-family decoder with a linear score head read at each sequence's last
// non-pad token, as Hugging Face's LlamaForSequenceClassification / Qwen2ForSequenceClassification compute it (a
// reward model when num_labels is 1), with parameter names and checkpoint folders that transformers loads. It
// computes scores; it never computes a loss.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <prefopt/model/llama.h>

namespace prefopt::model {

/// The position each row's score is read at, as transformers chooses it: the rightmost token that is not
/// pad_token_id (position 0 for a row of pads only); without a pad token, the last position. input_ids [B, T]
/// int64 -> [B] int64.
torch::Tensor last_token_positions(const torch::Tensor& input_ids, std::optional<int64_t> pad_token_id);

/// config.num_labels() >= 1 scores per sequence (1: a reward model).
///
/// Example:
/// ```
/// auto rm = prefopt::load_llama_sequence_classifier("out/final");   // a folder transformers also loads
/// auto rewards = rm->forward(input_ids, attention_mask).squeeze(-1);  // [B]
/// ```
class LlamaForSequenceClassificationImpl : public torch::nn::Cloneable<LlamaForSequenceClassificationImpl> {
 public:
  /// A new classifier: the decoder and the head drawn as transformers initialises them (normal(0,
  /// initializer_range), no bias). config.num_labels() must be >= 1.
  explicit LlamaForSequenceClassificationImpl(LlamaConfig config);
  void reset() override;
  /// Scores [B, num_labels] in the parameters' dtype, read at last_token_positions(input_ids).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});
  const LlamaConfig& config() const { return config_; }

  LlamaModel model{nullptr};
  /// [num_labels, hidden_size], no bias (transformers' "score").
  torch::nn::Linear score{nullptr};

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaForSequenceClassification);

/// Writes a classifier folder transformers' AutoModelForSequenceClassification loads: config.json (architectures
/// "LlamaForSequenceClassification" or "Qwen2ForSequenceClassification", id2label for num_labels labels) and
/// model.safetensors with the decoder's parameters under "model." and the head's as "score.weight". `decoder` and
/// `score_weight` [num_labels, hidden_size] may come from a causal LM and a separately trained head. Tensors are
/// written in the decoder's dtype, or converted to `dtype` when given. Atomic per file.
///
/// Example:
/// ```
/// prefopt::save_llama_sequence_classifier(*policy->model, head->weight, policy->config(), "out/reward_model");
/// ```
void save_llama_sequence_classifier(const LlamaModelImpl& decoder, const torch::Tensor& score_weight,
                                    const LlamaConfig& config, const std::string& directory,
                                    std::optional<torch::Dtype> dtype = std::nullopt);
void save_llama_sequence_classifier(const LlamaForSequenceClassificationImpl& model, const std::string& directory);

/// Loads a classifier folder (config.json naming a *ForSequenceClassification architecture, the weights from
/// model.safetensors or its sharded index); errors name the file and the tensor, as load_llama's.
LlamaForSequenceClassification load_llama_sequence_classifier(const std::string& directory,
                                                              const LlamaLoadOptions& options = {});

}  // namespace prefopt::model
