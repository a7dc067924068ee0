// The Trainer's state, shared by trainer.cpp (construction, the step loop, evaluation) and trainer_checkpoints.cpp
// (saving and restoring it): the model, data, objective, scorer, reference, optimizer, schedule, loss scaler, LoRA
// adapter, data-parallel group and the run's position. Private to src/train; holds state, never does I/O itself.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/adamw.h>

#include <prefopt/train/batch_scoring.h>
#include <prefopt/train/schedule.h>
#include <prefopt/train/trainer.h>
#include <prefopt/train/trainer_state.h>

#include "epoch_plan.h"
#include "gradient_reducer.h"
#include "optimizer_shards.h"

namespace prefopt::train {

struct Trainer::State {
  TrainerConfig config;
  LlamaForCausalLM model{nullptr};
  Dataset train;
  std::optional<Dataset> eval;
  std::unique_ptr<Objective> objective;
  std::unique_ptr<BatchScorer> scorer;
  std::unique_ptr<Reference> reference;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<LRSchedule> schedule;
  std::unique_ptr<LossScaler> scaler;  // fp16 only
  std::unique_ptr<LoraAdapter> lora;   // config.lora only
  std::vector<std::pair<int64_t, int64_t>> micro_batches;  // [begin, end) in the epoch's order
  std::vector<int64_t> example_tokens;  // max_tokens_per_batch only: each training example's packed token count
  int64_t identity_micro_batches = 0;   // the first epoch's micro-batch count (the run's identity)
  std::shared_ptr<ProcessGroup> group;  // data parallel only
  std::unique_ptr<detail::GradientReducer> reducer;
  std::unique_ptr<detail::OptimizerShards> optimizer_shards;  // shard_optimizer_state only: `optimizer` is this rank's
  std::vector<int64_t> shard;  // data parallel: this rank's positions in an epoch's order

  int64_t world() const { return group ? group->size() : 1; }
  bool writes() const { return !group || group->rank() == 0; }
  // The examples of micro-batch [begin, end): positions in this rank's shard of the epoch's order.
  std::vector<int64_t> examples(int64_t begin, int64_t end) const {
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t position = shard.empty() ? i : shard[static_cast<size_t>(i)];
      idx.push_back(run.order[static_cast<size_t>(position)]);
    }
    return idx;
  }
  // The micro-batches of an epoch and the run's steps, for this rank's share of the data.
  void plan_epochs() {
    const int64_t n = shard.empty() ? train.size() : static_cast<int64_t>(shard.size());
    // Fixed-size micro-batches depend only on n; a token budget (never with a shard) on the first epoch's order.
    std::mt19937_64 first_epoch = run.shuffle_rng;
    micro_batches = config.max_tokens_per_batch() > 0
                        ? detail::plan_micro_batches(detail::shuffled_order(n, config.shuffle(), first_epoch),
                                                     batch_plan())
                        : detail::split(n, config.batch_size(), no_singletons());
    identity_micro_batches = micro_per_epoch();
    total_steps = detail::count_steps(n, config.shuffle(), run.shuffle_rng, batch_plan(),
                                      config.gradient_accumulation_steps(), config.num_train_epochs(),
                                      config.max_steps());
  }
  int64_t total_steps = 0;
  TrainerState run;
  bool resumed = false;
  std::function<void(const LogEntry&, bool)> callback;
  std::function<void(const std::string&)> model_files_writer;

  bool no_singletons() const { return objective->needs().kl_pairs; }
  // What the optimizer trains: the model's parameters (all frozen under LoRA), the adapter's, then the loss's own
  // (a reward model's score head).
  std::vector<torch::Tensor> parameters() const {
    auto out = model->parameters();
    if (lora) {
      for (const auto& p : lora->parameters()) out.push_back(p);
    }
    for (const auto& p : objective->parameters()) out.push_back(p);
    return out;
  }
  int64_t micro_per_epoch() const { return static_cast<int64_t>(micro_batches.size()); }

  RunIdentity identity() const {
    RunIdentity id;
    id.loss = config.loss();
    id.batch_size = config.batch_size();
    id.gradient_accumulation_steps = config.gradient_accumulation_steps();
    id.dataset_size = train.size();
    id.dataset_fingerprint = train.fingerprint();
    id.micro_batches_per_epoch = identity_micro_batches;
    id.total_steps = total_steps;
    return id;
  }

  void prepare_reference_tables() {
    AutocastScope amp(config.mixed_precision(), config.device());
    // Only rank 0 reads and writes the cache; data parallel, the ranks share the computing.
    const auto [train_file, eval_file] = writes() ? Reference::cache_files(config.ref_logps_cache(), config.output_dir())
                                                  : std::pair<std::string, std::string>();
    reference->prepare_tables(*scorer, train, eval ? &*eval : nullptr, train_file, eval_file,
                              config.eval_batch_size(), group.get());
  }

  BatchScores score(const Dataset& data, const std::vector<int64_t>& idx, const torch::Tensor& table) {
    AutocastScope amp(config.mixed_precision(), config.device());
    return scorer->score(model, reference->model(), table, data, idx);
  }

  detail::BatchPlan batch_plan() const {
    detail::BatchPlan plan;
    plan.batch_size = config.batch_size();
    plan.max_tokens = config.max_tokens_per_batch();
    plan.tokens = example_tokens;
    plan.no_singletons = no_singletons();
    return plan;
  }

  void make_order() {
    run.order = detail::shuffled_order(train.size(), config.shuffle(), run.shuffle_rng);
    if (config.max_tokens_per_batch() > 0) micro_batches = detail::plan_micro_batches(run.order, batch_plan());
    run.order_ready = true;
  }

  double fractional_epoch() const {
    return static_cast<double>(run.epoch) + static_cast<double>(run.position) / static_cast<double>(micro_per_epoch());
  }

  void make_schedule() {
    TORCH_CHECK(config.warmup_steps() >= 0, "warmup_steps must be >= 0, got ", config.warmup_steps());
    const int64_t warmup = LRSchedule::resolve_warmup(config.warmup_steps(), config.warmup_ratio(), total_steps);
    schedule = std::make_unique<LRSchedule>(config.learning_rate(), total_steps, warmup, config.min_lr_ratio(),
                                            config.lr_scheduler_type());
  }
};

}  // namespace prefopt::train
