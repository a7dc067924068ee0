// The prefopt-train run configuration: a JSON file naming the model (a Hugging Face folder, or a config to
// build from scratch), the tokenizer, the data, the loss and its options, the optimizer, the schedule and the
// training loop, parsed strictly (unknown keys, wrong types and missing required keys are errors naming the key
// and its JSON path). Parsing only: it never loads a model or data (train/run.h does).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <prefopt/data/collate.h>
#include <prefopt/model/llama_config.h>
#include <prefopt/train/dataset.h>
#include <prefopt/train/trainer.h>

namespace prefopt::train {

/// Everything a config file holds; docs/training.md lists every key.
struct RunConfig {
  /// model.path: a Hugging Face checkpoint folder (load_llama) ...
  std::string model_path;
  /// ... or model.config: a config.json object to build a fresh model from (LlamaConfig::from_json_string).
  std::optional<LlamaConfig> model_config;
  /// model.dtype: "float32", "bfloat16", "float16" (default "float32").
  torch::Dtype model_dtype = torch::kFloat32;
  /// tokenizer.type: "hf" (a Hugging Face tokenizer.json folder, data::HFTokenizer) or "byte"
  /// (data::ByteTokenizer). Default: "hf" when model.path holds a tokenizer.json, else "byte".
  std::string tokenizer = "byte";
  /// tokenizer.path: the folder of the "hf" tokenizer (default: model.path), resolved like the data paths.
  std::string tokenizer_path;
  /// data.train (required), data.eval (optional): JSONL paths, relative ones resolved against the config
  /// file's folder; data.format; the encode options (data.max_length, ...).
  std::string train_file, eval_file;
  DataFormat format = DataFormat::Pairwise;
  data::EncodeOptions encode;
  /// Everything else.
  TrainerConfig trainer;
};

/// Parses config JSON text. `source` names it in errors ("run.json: training.batch_size: expected an integer,
/// got string"); `base_dir` resolves relative data paths (empty: as given).
///
/// Example:
/// ```
/// auto run = prefopt::train::parse_run_config(R"({"model": {"path": "ckpt"}, "data": {"train": "t.jsonl"}})",
///                                             "inline", "");
/// ```
RunConfig parse_run_config(const std::string& json_text, const std::string& source = "config",
                           const std::string& base_dir = "");
/// Reads and parses a config file; relative data paths are resolved against its folder.
RunConfig load_run_config(const std::string& path);

}  // namespace prefopt::train
