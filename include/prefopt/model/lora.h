// LoRA for LlamaForCausalLM, in PEFT's format: low-rank updates B A (scaled by alpha / r) added to the chosen
// projections of every layer, trainable copies of whole modules (modules_to_save), the base weights frozen; saving
// and loading PEFT adapter folders (adapter_config.json + adapter_model.safetensors with PEFT's key names) and
// writing the merged model. It never copies the base model: with the adapters off the model is the base model,
// which is what the trainer uses as the reference.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include <prefopt/model/llama.h>

namespace prefopt::model {

/// PEFT's LoraConfig fields prefopt supports (bias "none", no DoRA, the same r and alpha for every module).
struct LoraConfig {
  /// The rank of each update (> 0).
  TORCH_ARG(int64_t, r) = 8;
  /// The update is scaled by alpha / r (alpha / sqrt(r) with use_rslora).
  TORCH_ARG(double, alpha) = 8.0;
  /// Dropout on the update's input in train mode (PEFT's lora_dropout), in [0, 1).
  TORCH_ARG(double, dropout) = 0.0;
  /// Projections that get an update, by PEFT's names: any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
  /// down_proj, or {"all-linear"} for all seven; or module paths ending in one of them ("model.layers.3.mlp.up_proj",
  /// as PEFT writes an expanded "all-linear"), which match as PEFT matches them: a module is targeted when its path
  /// equals an entry or ends with "." + the entry. PEFT's default for Llama-family models is q_proj and v_proj.
  TORCH_ARG(std::vector<std::string>, target_modules) = {"q_proj", "v_proj"};
  /// Modules trained in full as a copy (the original is what the adapters-off model uses): "lm_head" and / or
  /// "embed_tokens".
  TORCH_ARG(std::vector<std::string>, modules_to_save) = {};
  /// How the update starts (PEFT's init_lora_weights): "default" (A Kaiming-uniform, B zero: the update starts at
  /// zero), "gaussian" (A ~ N(0, 1/r), B zero) or "random" (PEFT's false: A and B both as nn.Linear initialises
  /// them, so the update is not zero; for tests).
  TORCH_ARG(std::string, init) = "default";
  TORCH_ARG(bool, use_rslora) = false;

 public:
  /// alpha / r, or alpha / sqrt(r) with use_rslora.
  double scaling() const { return use_rslora_ ? alpha_ / std::sqrt(static_cast<double>(r_)) : alpha_ / static_cast<double>(r_); }
  /// target_modules with "all-linear" expanded, sorted.
  std::vector<std::string> resolved_targets() const;
  /// Whether the projection at `module_path` ("model.layers.0.self_attn.q_proj") gets an update.
  bool targets(const std::string& module_path) const;
  /// Checks every field; errors name it.
  void validate() const;
  /// adapter_config.json as PEFT writes and reads it (peft_type "LORA", task_type "CAUSAL_LM").
  std::string to_json_string(const std::string& base_model_name_or_path = "") const;
  /// Reads adapter_config.json; errors name `source` and the field, and refuse what prefopt does not implement
  /// (DoRA, biases, per-module ranks, fan_in_fan_out, layers_to_transform, ...).
  static LoraConfig from_json_string(const std::string& text, const std::string& source = "adapter_config.json");
};

/// The LoRA adapter of one model. Attaching it freezes every parameter of the model (requires_grad false) and
/// adds, to each targeted projection of each layer, the update
///   dropout(x) @ A^T @ B^T * scaling,   A: [r, in_features], B: [out_features, r]
/// (PEFT's lora_A.weight and lora_B.weight), created on the model's device in its parameters' dtype. The adapter
/// keeps the model alive; destroying the adapter (or detach()) removes the updates from the model.
///
/// Key names are PEFT's: "base_model.model.model.layers.<i>.self_attn.q_proj.lora_A.weight", ... and for
/// modules_to_save "base_model.model.lm_head.weight" / "base_model.model.model.embed_tokens.weight".
///
/// Example:
/// ```
/// auto model = prefopt::load_llama("Qwen2.5-0.5B");
/// prefopt::LoraAdapter lora(model, prefopt::LoraConfig().r(16).alpha(32).target_modules({"all-linear"}));
/// auto optimizer = prefopt::train::make_adamw(lora.parameters(), 1e-4, 0.9, 0.999, 1e-8, 0.0);
/// // ... train; the reference is the same model under prefopt::AdaptersDisabled ...
/// lora.save("out/adapter");                 // peft.PeftModel.from_pretrained(base, "out/adapter")
/// lora.save_merged("out/merged");           // transformers.AutoModelForCausalLM.from_pretrained("out/merged")
/// ```
class LoraAdapter {
 public:
  LoraAdapter(LlamaForCausalLM model, LoraConfig config);
  /// Attaches the adapter saved in `directory` (its adapter_config.json and weights) to `model`.
  static std::unique_ptr<LoraAdapter> load(LlamaForCausalLM model, const std::string& directory);
  ~LoraAdapter();
  LoraAdapter(const LoraAdapter&) = delete;
  LoraAdapter& operator=(const LoraAdapter&) = delete;

  const LoraConfig& config() const { return config_; }
  /// The trainable tensors, in the order of named_parameters().
  std::vector<torch::Tensor> parameters() const;
  /// (PEFT key name, tensor), sorted by name.
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;

  /// Writes adapter_config.json and adapter_model.safetensors (the tensors in their dtype, or in `dtype`) into
  /// `directory`, creating it; each file is written to a temporary name and renamed.
  void save(const std::string& directory, std::optional<torch::Dtype> dtype = std::nullopt,
            const std::string& base_model_name_or_path = "") const;
  /// Copies the weights of a saved adapter folder into this adapter; the folder's config must describe the same
  /// adapter (r, targets, modules_to_save) and hold every tensor with its shape. Errors name the file and key.
  void load_weights(const std::string& directory);
  /// Writes the model with every update merged into its weight (W + scaling * B A, computed in float32) and the
  /// modules_to_save copies in place of the originals, as a Hugging Face checkpoint folder (save_llama's layout)
  /// in the model's dtype or `dtype`. The model itself is left unchanged.
  void save_merged(const std::string& directory, std::optional<torch::Dtype> dtype = std::nullopt) const;
  /// Removes the updates and overrides from the model (its parameters stay frozen).
  void detach();

 private:
  struct Update;
  LlamaForCausalLM model_;
  LoraConfig config_;
  std::vector<std::pair<std::string, std::shared_ptr<Update>>> updates_;  // by module path, sorted
  std::vector<std::pair<std::string, torch::Tensor>> saved_modules_;      // PEFT key, trainable copy
  bool attached_ = false;
};

}  // namespace prefopt::model
