// LlamaForSequenceClassification: the decoder plus a bias-free linear score read at the last non-pad token (the
// position rule of transformers' *ForSequenceClassification), and its Hugging Face checkpoint folders. Never
// computes a loss.
#include <prefopt/model/sequence_classifier.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include "../common/files.h"
#include "checkpoint_io.h"

namespace prefopt::model {

torch::Tensor last_token_positions(const torch::Tensor& input_ids, std::optional<int64_t> pad_token_id) {
  TORCH_CHECK(input_ids.defined() && input_ids.dim() == 2 && input_ids.size(1) >= 1,
              "input_ids must have shape [B, T] with T >= 1, got ",
              input_ids.defined() ? io::shape_string(input_ids.sizes()) : std::string("an undefined tensor"));
  const int64_t t = input_ids.size(1);
  if (!pad_token_id) return torch::full({input_ids.size(0)}, t - 1, input_ids.options().dtype(torch::kLong));
  // The rightmost non-pad position: argmax of position * (token != pad), 0 for a row of pads only.
  const torch::Tensor positions = torch::arange(t, input_ids.options().dtype(torch::kLong));
  return (positions * input_ids.ne(*pad_token_id).to(torch::kLong)).argmax(1);
}

LlamaForSequenceClassificationImpl::LlamaForSequenceClassificationImpl(LlamaConfig config)
    : config_(std::move(config)) {
  config_.validate();
  TORCH_CHECK(config_.num_labels() >= 1, "LlamaForSequenceClassification: num_labels must be >= 1, got ",
              config_.num_labels());
  reset();
}

void LlamaForSequenceClassificationImpl::reset() {
  model = register_module("model", LlamaModel(config_));
  score = register_module(
      "score", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size(), config_.num_labels()).bias(false)));
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(score->weight, 0.0, config_.initializer_range());
}

torch::Tensor LlamaForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                          const torch::Tensor& attention_mask) {
  const torch::Tensor hidden = model(input_ids, attention_mask);  // [B, T, H]
  const torch::Tensor at = last_token_positions(input_ids, config_.pad_token_id()).to(hidden.device());
  const torch::Tensor pooled = hidden.gather(1, at.view({-1, 1, 1}).expand({-1, 1, hidden.size(2)})).squeeze(1);
  return score(pooled);
}

void save_llama_sequence_classifier(const LlamaModelImpl& decoder, const torch::Tensor& score_weight,
                                    const LlamaConfig& config, const std::string& directory,
                                    std::optional<torch::Dtype> dtype) {
  TORCH_CHECK(score_weight.defined() && score_weight.dim() == 2 && score_weight.size(1) == config.hidden_size(),
              "score_weight must have shape [num_labels, hidden_size = ", config.hidden_size(), "], got ",
              score_weight.defined() ? io::shape_string(score_weight.sizes()) : std::string("undefined"));
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : decoder.named_parameters(/*recurse=*/true)) tensors.emplace_back("model." + item.key(), item.value());
  tensors.emplace_back("score.weight", score_weight.to(tensors.empty() ? score_weight.scalar_type()
                                                                        : tensors.front().second.scalar_type()));
  LlamaConfig out = config;
  out.num_labels(score_weight.size(0));
  io::save_checkpoint_folder(tensors, out, directory, dtype);
}

void save_llama_sequence_classifier(const LlamaForSequenceClassificationImpl& model, const std::string& directory) {
  save_llama_sequence_classifier(*model.model, model.score->weight, model.config(), directory);
}

LlamaForSequenceClassification load_llama_sequence_classifier(const std::string& directory,
                                                              const LlamaLoadOptions& options) {
  const std::string config_path = files::join(directory, "config.json");
  TORCH_CHECK(files::exists(config_path), "no config.json in '", directory, "'");
  const LlamaConfig config = LlamaConfig::from_json_file(config_path);
  TORCH_CHECK(config.num_labels() >= 1, config_path, ": architectures names ", config.architecture_name(),
              ", not a *ForSequenceClassification model (load it with load_llama)");
  LlamaForSequenceClassification model(config);
  model->to(options.device(), options.dtype());
  io::load_checkpoint_parameters(*model, directory, config.architecture_name(),
                                     [](const std::string&) { return false; });
  return model;
}

}  // namespace prefopt::model
