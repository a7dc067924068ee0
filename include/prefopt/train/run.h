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

}  // namespace prefopt::train
