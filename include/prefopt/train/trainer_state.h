// Where a training run stands (step, epoch, position in the epoch's shuffled order, the shuffle generator, the
// metrics accumulated since the last log) and its trainer_state.json form, read back with every field checked
// against the run resuming it, so an edited or damaged file is an error naming the field, never a crash or a
// silently wrong run. Serialises only: never touches a model, an optimizer or the data.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <prefopt/train/logging.h>

namespace prefopt::train {

/// The position of a run. Steps are optimizer steps; a micro-batch position counts micro-batches of the
/// current epoch already trained on.
struct TrainerState {
  int64_t global_step = 0;
  int64_t epoch = 0;
  int64_t position = 0;
  /// This epoch's order of example indices (a permutation of [0, dataset size)), once drawn.
  bool order_ready = false;
  std::vector<int64_t> order;
  std::mt19937_64 shuffle_rng;
  /// Metrics of the steps since the last log, and their number.
  MetricAverager log_accumulator;
  int64_t log_accumulated_steps = 0;
  /// fp16 mixed precision: the loss scaler's state (scale 0 when the run has none) and the steps skipped so far
  /// because their gradients overflowed.
  double loss_scale = 0.0;
  int64_t loss_scale_growth_tracker = 0;
  int64_t skipped_steps = 0;
};

/// What a checkpoint must agree on with the run that resumes from it, and the bounds its state is checked
/// against. total_steps may differ: a resumed run with more (or fewer, but not fewer than already done) steps
/// recomputes its schedule.
struct RunIdentity {
  std::string loss;
  int64_t batch_size = 0;
  int64_t gradient_accumulation_steps = 0;
  int64_t dataset_size = 0;
  int64_t dataset_fingerprint = 0;
  int64_t micro_batches_per_epoch = 0;
  int64_t total_steps = 0;
};

/// trainer_state.json's text for `state` in a run `identity`.
std::string trainer_state_json(const TrainerState& state, const RunIdentity& identity);

/// What a trainer_state.json held: the state and the total_steps of the run that wrote it.
struct SavedTrainerState {
  TrainerState state;
  int64_t total_steps = 0;
};

/// Parses trainer_state.json's text (`path` names it in errors) and checks it against the resuming run: the
/// identity fields must match (loss, batch size, accumulation, dataset size and fingerprint), and the state must
/// be one a run can be in: 0 <= global_step <= the writer's total_steps, global_step < now.total_steps (else
/// nothing is left to train), 0 <= epoch, 0 <= position < micro_batches_per_epoch, an order that is a permutation
/// of [0, dataset_size), 0 <= log_accumulated_steps <= global_step, a valid generator state.
///
/// Example:
/// ```
/// auto saved = prefopt::train::parse_trainer_state(text, "ckpt/trainer_state.json", identity);
/// if (saved.total_steps != identity.total_steps) { /* recompute the schedule */ }
/// ```
SavedTrainerState parse_trainer_state(const std::string& text, const std::string& path, const RunIdentity& now);

}  // namespace prefopt::train
