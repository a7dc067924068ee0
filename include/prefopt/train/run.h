// Running a prefopt-train configuration: builds the model, the tokenizer and the datasets a RunConfig names, and
// trains them with the Trainer. Never parses a config file (config.h does) and never changes what it builds.
#pragma once

#include <prefopt/train/config.h>
#include <prefopt/train/trainer.h>

namespace prefopt::train {

/// Builds the model (loaded from model.path, or new from model.config, seeded by training.seed), the tokenizer and
/// the datasets, trains, and returns the result.
///
/// Example:
/// ```
/// auto result = prefopt::train::run_training(prefopt::train::load_run_config("examples/configs/dpo.json"));
/// ```
TrainResult run_training(const RunConfig& config);

/// Encodes the training data exactly as run_training would (same tokenizer, chat template, truncation and
/// checks) and writes it to `path` as JSONL in the pre-tokenized form of the data's format ("prompt_ids",
/// "chosen_ids", "rejected_ids" for pairwise; "responses_ids" and the labels for ranked; ...), one line per
/// example in file order, so the ids can be inspected or compared with another trainer's and read back as data.
/// Loads the model's config, never its weights. The file is written to a temporary name and renamed.
///
/// Example:
/// ```
/// prefopt::train::write_encoded_dataset(prefopt::train::load_run_config("run.json"), "encoded.jsonl");
/// ```
void write_encoded_dataset(const RunConfig& config, const std::string& path);

}  // namespace prefopt::train
