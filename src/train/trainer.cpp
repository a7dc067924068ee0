// The Trainer: the step loop (micro-batches in a seeded shuffled order, gradient accumulation, clipping, AdamW on
// the warm-up + cosine schedule), evaluation, logging and checkpoints, so that a resumed run repeats an
// uninterrupted one exactly. Scoring lives in batch_scoring.cpp, the reference in reference.cpp, the run's
// position in trainer_state.cpp, checkpoints in trainer_checkpoints.cpp; this file never changes the math of the layers
// below and never reads a config.
#include <prefopt/train/trainer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <numeric>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <prefopt/metrics.h>
#include <prefopt/train/batch_scoring.h>
#include <prefopt/train/checkpoint.h>
#include <prefopt/train/optim.h>
#include <prefopt/train/schedule.h>
#include <prefopt/train/trainer_state.h>

#include "../common/files.h"
#include "trainer_impl.h"

namespace prefopt::train {

namespace {

// SFT on pairs trains on the chosen responses.
Dataset as_completions(const Dataset& d) {
  std::vector<CompletionExample> c;
  for (const auto& p : d.pairs) c.push_back({p.prompt, p.chosen});
  Dataset out = Dataset::from_completions(std::move(c));
  out.max_length = d.max_length;
  return out;
}

}  // namespace

Trainer::Trainer(TrainerConfig config, LlamaForCausalLM model, Dataset train_data, std::optional<Dataset> eval_data)
    : state_(std::make_unique<State>()) {
  auto& s = *state_;
  TORCH_CHECK(model, "Trainer: model must not be empty");
  TORCH_CHECK(config.batch_size() >= 1, "batch_size must be >= 1, got ", config.batch_size());
  TORCH_CHECK(config.eval_batch_size() >= 1, "eval_batch_size must be >= 1, got ", config.eval_batch_size());
  TORCH_CHECK(config.gradient_accumulation_steps() >= 1, "gradient_accumulation_steps must be >= 1, got ",
              config.gradient_accumulation_steps());
  TORCH_CHECK(config.num_train_epochs() >= 1 || config.max_steps() > 0,
              "num_train_epochs must be >= 1 (or max_steps > 0), got ", config.num_train_epochs());
  TORCH_CHECK(config.logging_steps() >= 1, "logging_steps must be >= 1, got ", config.logging_steps());
  TORCH_CHECK(config.eval_steps() >= 0, "eval_steps must be >= 0, got ", config.eval_steps());
  TORCH_CHECK(config.save_steps() >= 0, "save_steps must be >= 0, got ", config.save_steps());
  TORCH_CHECK(config.save_total_limit() >= 0, "save_total_limit must be >= 0, got ", config.save_total_limit());
  TORCH_CHECK(train_data.size() >= 1, "the training data is empty");
  s.config = std::move(config);
  s.objective = make_objective(s.config.loss(), s.config.loss_options());
  const DataFormat format = s.objective->format();
  if (format == DataFormat::Completions && train_data.format == DataFormat::Pairwise) {
    train_data = as_completions(train_data);
  }
  if (format == DataFormat::Completions && eval_data && eval_data->format == DataFormat::Pairwise) {
    eval_data = as_completions(*eval_data);
  }
  TORCH_CHECK(train_data.format == format, "loss \"", s.config.loss(), "\" does not train on ",
              to_string(train_data.format), " data; it trains on ", to_string(format), " data (data.format)");
  if (eval_data) {
    TORCH_CHECK(eval_data->format == train_data.format, "eval data is ", to_string(eval_data->format),
                " but the training data is ", to_string(train_data.format));
    TORCH_CHECK(eval_data->size() >= 1, "the eval data is empty");
  }
  const ScoringNeeds needs = s.objective->needs();
  TORCH_CHECK(!((needs.token_kl || needs.kl_pairs) && s.config.ref_model() == RefModelMode::Precomputed), "loss \"",
              s.config.loss(), "\" needs the reference model at every step (",
              needs.token_kl ? "per-token KL" : "KL pairs within each micro-batch",
              "), so ref_model must be \"copy\", not \"precomputed\"");
  if (needs.kl_pairs) {
    TORCH_CHECK(train_data.size() >= 2 && s.config.batch_size() >= 2 && s.config.eval_batch_size() >= 2, "loss \"",
                s.config.loss(), "\" estimates its KL baseline from the completions of the other examples of a ",
                "micro-batch, so batch_size and eval_batch_size must be >= 2 and the data hold >= 2 examples; got ",
                "batch_size ", s.config.batch_size(), ", eval_batch_size ", s.config.eval_batch_size(), ", ",
                train_data.size(), " examples");
    TORCH_CHECK(!eval_data || eval_data->size() >= 2, "loss \"", s.config.loss(),
                "\": the eval data must hold >= 2 examples (KL pairs within a batch), got ", eval_data->size());
  }
  if (needs.degree_variants > 0) {
    for (const Dataset* d : {&train_data, eval_data ? &*eval_data : nullptr}) {
      if (d == nullptr) continue;
      TORCH_CHECK(d->degree_variants.size() == d->pairs.size(), "loss \"", s.config.loss(), "\" trains on ",
                  needs.degree_variants, " graded variants of each chosen response; make them with ",
                  "train::add_degree_variants(data, tokenizer, ", needs.degree_variants, ") (prefopt-train does)");
    }
  }
  if (needs.steps) {
    for (const Dataset* d : {&train_data, eval_data ? &*eval_data : nullptr}) {
      if (d == nullptr) continue;
      TORCH_CHECK(d->step_ids.size() == d->lists.size(), "loss \"", s.config.loss(), "\" scores each response by ",
                  "steps; cut them with train::add_step_ids(data, tokenizer, delimiter) (prefopt-train does)");
    }
    TORCH_CHECK(s.config.ref_model() == RefModelMode::Copy, "loss \"", s.config.loss(), "\" needs the reference ",
                "model's per-step log-probs at every step, so ref_model must be \"copy\", not \"precomputed\"");
  }
  s.train = std::move(train_data);
  s.eval = std::move(eval_data);

  s.model = model;
  s.model->to(s.config.device());
  s.model->train();
  if (s.config.mixed_precision() != MixedPrecision::No) {
    for (const auto& item : s.model->named_parameters()) {
      TORCH_CHECK(item.value().scalar_type() == torch::kFloat, "mixed_precision \"",
                  to_string(s.config.mixed_precision()), "\" keeps float32 master weights and computes in ",
                  to_string(s.config.mixed_precision()), "; the model's parameter ", item.key(), " is ",
                  item.value().scalar_type(), " (load the model in float32: model.dtype \"float32\")");
    }
  }
  if (s.config.device().is_cpu()) {
    const std::string slow = cpu_mixed_precision_warning(s.config.mixed_precision());
    if (!slow.empty()) std::fprintf(stderr, "warning: %s\n", slow.c_str());
  }
  if (s.config.mixed_precision() == MixedPrecision::FP16) {
    s.scaler = std::make_unique<LossScaler>(s.config.initial_loss_scale());
    s.run.loss_scale = s.scaler->scale();
  }
  s.model->set_gradient_checkpointing(s.config.gradient_checkpointing());
  if (s.config.lora()) {
    TORCH_CHECK(!s.config.save_merged_model() || s.config.lora()->modules_to_save().empty() ||
                    !s.model->config().tie_word_embeddings(),
                "lora.merge: the model ties lm_head to embed_tokens, so a separately trained copy of one of them "
                "(lora.modules_to_save) cannot be merged into it; drop modules_to_save or merge");
    s.lora = std::make_unique<LoraAdapter>(s.model, *s.config.lora());
  }
  ScoringConfig scoring;
  scoring.device = s.config.device();
  if (s.model->config().pad_token_id()) scoring.pad_token_id = *s.model->config().pad_token_id();
  scoring.fused_linear_logps = s.config.fused_linear_logps();
  scoring.logps_chunk_bytes = s.config.logps_chunk_bytes();
  scoring.packing = s.config.packing();
  s.scorer = std::make_unique<BatchScorer>(scoring, needs);
  s.reference = std::make_unique<Reference>(s.config.ref_model(), needs.reference, s.model, s.config.device(),
                                            /*share_policy=*/s.lora != nullptr);
  seed_torch(s.config.seed());
  s.run.shuffle_rng.seed(s.config.seed());

  TORCH_CHECK(s.config.max_tokens_per_batch() >= 0, "max_tokens_per_batch must be >= 0, got ",
              s.config.max_tokens_per_batch());
  if (s.config.max_tokens_per_batch() > 0) s.example_tokens = detail::packed_token_counts(s.train);
  s.plan_epochs();
  s.objective->bind(*s.model);
  TORCH_CHECK(!s.lora || s.objective->parameters().empty(), "lora: loss \"", s.config.loss(),
              "\" trains a head of its own next to the model, which is not supported with a LoRA adapter; train it "
              "without model.lora");
  s.optimizer = make_adamw(s.parameters(), s.config.learning_rate(), s.config.adam_beta1(), s.config.adam_beta2(),
                           s.config.adam_epsilon(), s.config.weight_decay());
  s.make_schedule();
}

Trainer::~Trainer() = default;

LlamaForCausalLM Trainer::model() const { return state_->model; }
LoraAdapter* Trainer::lora() const { return state_->lora.get(); }
const TrainerConfig& Trainer::config() const { return state_->config; }
int64_t Trainer::global_step() const { return state_->run.global_step; }
int64_t Trainer::total_steps() const { return state_->total_steps; }
void Trainer::set_model_files_writer(std::function<void(const std::string&)> writer) {
  state_->model_files_writer = std::move(writer);
}

void Trainer::set_process_group(std::shared_ptr<ProcessGroup> group) {
  auto& s = *state_;
  TORCH_CHECK(group != nullptr, "set_process_group: the group is null");
  TORCH_CHECK(s.run.global_step == 0 && !s.resumed, "set_process_group: call it before train()");
  TORCH_CHECK(s.config.max_tokens_per_batch() <= 0, "data parallel training takes batch_size examples per ",
              "micro-batch on each rank; max_tokens_per_batch (", s.config.max_tokens_per_batch(),
              ") would give the ranks different numbers of steps");
  TORCH_CHECK(group->device().type() == s.config.device().type(), "set_process_group: the group communicates ",
              group->device(), " tensors but the model trains on ", s.config.device());
  s.group = std::move(group);
  s.reducer.reset();
  if (s.group->size() == 1) return;
  // A loss statistic of the global batch (BCO's batch reward mean) is the mean of the ranks' equal-sized shares.
  s.objective->set_mean_over_ranks([group = s.group](const torch::Tensor& local) {
    torch::Tensor t = local.detach().to(group->device(), torch::kFloat64).reshape({-1}).clone();
    group->all_reduce(t);
    return (t / static_cast<double>(group->size())).reshape(local.sizes()).to(local.device());
  });
  {
    // Every rank starts from rank 0's parameters (the frozen ones too: a LoRA run's base weights).
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> all;
    for (const auto& p : s.parameters()) all.push_back(p.detach());
    s.group->broadcast(all, 0);
  }
  const int64_t n = s.train.size(), world = s.group->size(), rank = s.group->rank();
  s.shard.clear();
  for (int64_t i = 0; i < (n + world - 1) / world; ++i) s.shard.push_back((rank + i * world) % n);
  s.plan_epochs();
  s.make_schedule();
  std::vector<torch::Tensor> trainable;
  for (const auto& p : s.parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  s.reducer = std::make_unique<detail::GradientReducer>(trainable, *s.group);
  if (s.config.shard_optimizer_state()) {
    s.optimizer_shards = std::make_unique<detail::OptimizerShards>(trainable, *s.group);
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(s.optimizer->defaults());
    s.optimizer = std::make_unique<torch::optim::AdamW>(s.optimizer_shards->owned(), options);
  }
}

Trainer::CommunicationStats Trainer::last_step_communication() const {
  CommunicationStats out;
  if (const auto& r = state_->reducer) {
    out.communication_seconds = r->communication_seconds();
    out.hidden_seconds = r->hidden_seconds();
    out.waited_seconds = r->waited_seconds();
    out.buckets = r->num_buckets();
  }
  return out;
}

void Trainer::set_log_callback(std::function<void(const LogEntry&, bool)> callback) {
  state_->callback = std::move(callback);
}

std::map<std::string, double> Trainer::evaluate() {
  TORCH_CHECK(state_->eval.has_value(), "evaluate(): no eval data was given to the Trainer");
  state_->prepare_reference_tables();
  return evaluate(*state_->eval);
}

std::map<std::string, double> Trainer::evaluate(const Dataset& data) {
  auto& s = *state_;
  const DataFormat format = s.objective->format();
  Dataset converted;
  const Dataset* d = &data;
  if (format == DataFormat::Completions && data.format == DataFormat::Pairwise) {
    converted = as_completions(data);
    d = &converted;
  }
  TORCH_CHECK(d->format == format, "evaluate: loss \"", s.config.loss(), "\" does not take ", to_string(d->format),
              " data");
  TORCH_CHECK(d->size() >= 1, "evaluate: the data is empty");
  const bool is_own_eval = s.eval && &data == &*s.eval;
  const torch::Tensor table = is_own_eval ? s.reference->table(true) : torch::Tensor();
  const bool was_training = s.model->is_training();
  s.model->eval();
  torch::NoGradGuard guard;
  MetricAverager avg;
  std::vector<torch::Tensor> acc, tau, ndcg_v;
  for (const auto& [begin, end] : detail::split(d->size(), s.config.eval_batch_size(), s.no_singletons())) {
    std::vector<int64_t> idx(static_cast<size_t>(end - begin));
    std::iota(idx.begin(), idx.end(), begin);
    const BatchScores scores = s.score(*d, idx, table);
    auto out = s.objective->compute(scores);
    const double w = static_cast<double>(idx.size());
    avg.add("loss", out.loss.item<double>(), w);
    for (const auto& [name, value] : out.metrics) avg.add(name, value.item<double>(), w);
    if (const auto* l = std::get_if<ListScores>(&scores)) {
      auto list_scores = out.rewards.defined() ? out.rewards : (l->ref.defined() ? l->policy - l->ref : l->policy);
      // Ranks (lower is better) become grades for the metrics: max rank of the list minus rank.
      auto labels = l->labels.to(torch::kFloat64);
      if (l->labels_are_ranks) {
        auto masked = labels.masked_fill(l->mask.logical_not(), -1e300);
        labels = std::get<0>(masked.max(1, true)) - labels;
      }
      acc.push_back(ranking_accuracy(list_scores.to(torch::kFloat64), labels, l->mask).cpu());
      tau.push_back(kendall_tau(list_scores.to(torch::kFloat64), labels, l->mask).cpu());
      ndcg_v.push_back(ndcg(list_scores.to(torch::kFloat64), labels, l->mask).cpu());
    }
  }
  if (was_training) s.model->train();
  std::map<std::string, double> out;
  for (const auto& [name, value] : avg.means()) out["eval_" + name] = value;
  if (!acc.empty()) {
    out["eval_ranking/accuracy"] = torch::cat(acc).nanmean().item<double>();
    out["eval_ranking/kendall_tau"] = torch::cat(tau).nanmean().item<double>();
    out["eval_ranking/ndcg"] = torch::cat(ndcg_v).nanmean().item<double>();
  }
  return out;
}

TrainResult Trainer::train() {
  auto& s = *state_;
  TrainResult result;
  if (!s.config.resume_from().empty() && !s.resumed) load_checkpoint(s.config.resume_from());
  // Only rank 0 writes; the others train alongside it.
  const std::string out_dir = s.writes() ? s.config.output_dir() : std::string();
  std::string metrics_path;
  if (!out_dir.empty()) {
    make_directories(out_dir);
    metrics_path = files::join(out_dir, "metrics.jsonl");
    // Lines an interrupted run logged after its checkpoint would otherwise appear twice.
    if (s.resumed) MetricsWriter::truncate_after(metrics_path, s.run.global_step);
  }
  MetricsWriter metrics(metrics_path);
  s.prepare_reference_tables();
  ProgressReporter progress(s.writes() ? s.config.progress() : ProgressMode::Silent, s.total_steps,
                            s.run.global_step);
  auto emit = [&](const LogEntry& entry, bool is_eval) {
    metrics.append(entry);
    progress.log(entry, is_eval);
    (is_eval ? result.evals : result.logs).push_back(entry);
    if (s.callback) s.callback(entry, is_eval);
  };
  auto run_eval = [&] {
    LogEntry entry;
    entry.step = s.run.global_step;
    entry.epoch = s.fractional_epoch();
    entry.metrics = evaluate(*s.eval);
    emit(entry, true);
  };
  // Every rank takes part in a checkpoint (a ZeRO-1 run gathers AdamW's state); rank 0 writes it.
  const bool saves = !s.config.output_dir().empty();
  auto save = [&] {
    const std::string dir = files::join(s.config.output_dir(), "checkpoint-" + std::to_string(s.run.global_step));
    save_checkpoint(dir);
    if (out_dir.empty()) return;
    result.last_checkpoint = dir;
    if (s.config.save_total_limit() > 0) {
      auto all = list_checkpoints(out_dir);
      const auto limit = static_cast<size_t>(s.config.save_total_limit());
      for (size_t i = 0; i + limit < all.size(); ++i) remove_directory_tree(all[i]);
    }
  };

  s.model->train();
  auto& r = s.run;
  bool evaluated_last = false, saved_last = false;
  while (r.global_step < s.total_steps) {
    if (!r.order_ready) s.make_order();
    const int64_t n_micro = std::min(s.config.gradient_accumulation_steps(), s.micro_per_epoch() - r.position);
    const double lr = s.schedule->lr();
    set_learning_rate(*s.optimizer, lr);
    // Every parameter's gradient, not only the optimizer's (a ZeRO-1 rank steps just its own).
    for (auto& p : s.parameters()) p.mutable_grad().reset();
    MetricAverager step_avg;
    double step_loss = 0.0;
    for (int64_t m = 0; m < n_micro; ++m) {
      const auto [begin, end] = s.micro_batches[static_cast<size_t>(r.position)];
      const std::vector<int64_t> idx = s.examples(begin, end);
      // Data parallel: only a step's last backward communicates; the others accumulate locally.
      if (s.reducer) s.reducer->set_sync(m == n_micro - 1);
      BatchScores scores = s.score(s.train, idx, s.reference->table(false));
      if (auto* u = std::get_if<UnpairedScores>(&scores); u != nullptr && s.reducer && u->policy_kl.defined()) {
        // KTO's KL baseline is a statistic of the global batch: the mean over every rank's mismatched pairs.
        torch::Tensor kl = (u->policy_kl - u->ref_kl).mean().detach().to(torch::kFloat64).reshape({1});
        s.group->all_reduce(kl);
        u->kl = (kl[0] / static_cast<double>(s.world())).to(u->policy_kl.scalar_type());
      }
      auto out = s.objective->compute(scores);
      const double loss_value = out.loss.item<double>();
      TORCH_CHECK(std::isfinite(loss_value), "step ", r.global_step + 1, ": the loss is ", loss_value,
                  " (micro-batch ", m, " of epoch ", r.epoch, "); stopping before it reaches the weights");
      const double loss_scale = s.scaler ? s.scaler->scale() : 1.0;
      (out.loss * (loss_scale / static_cast<double>(n_micro))).backward();
      step_loss += loss_value / static_cast<double>(n_micro);
      for (const auto& [name, value] : out.metrics) step_avg.add(name, value.item<double>());
      ++r.position;
    }
    if (s.reducer) {
      s.reducer->finish();
      // The logged loss and metrics are means over the ranks (each rank's over its own micro-batches).
      std::vector<double> values{step_loss};
      const auto means = step_avg.means();
      for (const auto& [name, value] : means) values.push_back(value);
      torch::Tensor reduced = torch::tensor(values, torch::kFloat64).to(s.group->device());
      s.group->all_reduce(reduced);
      reduced = (reduced / static_cast<double>(s.world())).cpu();
      step_loss = reduced[0].item<double>();
      step_avg = MetricAverager();
      int64_t k = 1;
      for (const auto& [name, value] : means) step_avg.add(name, reduced[k++].item<double>());
    }
    // fp16: gradients back to their true scale; an overflow skips the step (weights and AdamW state untouched).
    const bool skipped = s.scaler && s.scaler->unscale(s.parameters());
    double grad_norm = 0.0;
    if (!skipped) {
      grad_norm = clip_grad_norm(s.parameters(), s.config.max_grad_norm());
      s.optimizer->step();
      if (s.optimizer_shards) s.optimizer_shards->broadcast_parameters();
    }
    if (s.scaler) {
      s.scaler->update(skipped);
      r.loss_scale = s.scaler->scale();
      r.loss_scale_growth_tracker = s.scaler->growth_tracker();
      if (skipped) ++r.skipped_steps;
    }
    // The schedule advances on a skipped step too, so the rate depends only on the step number.
    s.schedule->step();
    ++r.global_step;
    if (r.position >= s.micro_per_epoch()) {
      ++r.epoch;
      r.position = 0;
      r.order_ready = false;
    }
    LogEntry entry;
    entry.step = r.global_step;
    entry.epoch = s.fractional_epoch();
    entry.metrics = step_avg.means();
    entry.metrics["loss"] = step_loss;
    if (!skipped) entry.metrics["grad_norm"] = grad_norm;
    entry.metrics["learning_rate"] = lr;
    if (s.scaler) entry.metrics["loss_scale"] = s.scaler->scale();
    result.steps.push_back(entry);
    for (const auto& [name, value] : entry.metrics) r.log_accumulator.add(name, value);
    ++r.log_accumulated_steps;
    progress.step(r.global_step, entry.metrics);

    evaluated_last = saved_last = false;
    if (r.global_step % s.config.logging_steps() == 0 || r.global_step == s.total_steps) {
      LogEntry log;
      log.step = r.global_step;
      log.epoch = entry.epoch;
      log.metrics = r.log_accumulator.means();
      // The rate and norm of the last step, as transformers logs them.
      log.metrics["learning_rate"] = lr;
      if (!skipped) log.metrics["grad_norm"] = grad_norm;
      log.metrics["epoch"] = entry.epoch;
      if (s.scaler) {
        log.metrics["loss_scale"] = s.scaler->scale();
        log.metrics["skipped_steps"] = static_cast<double>(r.skipped_steps);
      }
      r.log_accumulator.clear();
      r.log_accumulated_steps = 0;
      emit(log, false);
    }
    if (s.eval && s.config.eval_steps() > 0 && r.global_step % s.config.eval_steps() == 0) {
      run_eval();
      evaluated_last = true;
    }
    if (saves && s.config.save_steps() > 0 && r.global_step % s.config.save_steps() == 0) {
      save();
      saved_last = true;
    }
  }
  progress.finish();
  if (s.eval && !evaluated_last) run_eval();
  if (saves && !saved_last) save();
  if (!out_dir.empty()) {
    if (s.config.save_final_model()) {
      write_directory_atomically(files::join(out_dir, "final"),
                                 [&](const std::string& tmp) {
                                   if (s.lora) {
                                     s.lora->save(tmp, s.config.save_dtype());
                                   } else {
                                     s.objective->save_model(*s.model, tmp, s.config.save_dtype());
                                   }
                                   if (s.model_files_writer) s.model_files_writer(tmp);
                                 });
    }
    if (s.lora && s.config.save_merged_model()) {
      write_directory_atomically(files::join(out_dir, "merged"), [&](const std::string& tmp) {
        s.lora->save_merged(tmp, s.config.save_dtype());
        if (s.model_files_writer) s.model_files_writer(tmp);
      });
    }
  }
  result.global_step = r.global_step;
  // No rank leaves (closing its connections, rank 0 its store) while another still writes or communicates.
  if (s.group && s.group->size() > 1) s.group->barrier();
  return result;
}

}  // namespace prefopt::train
