// The Trainer: the step loop (micro-batches in a seeded shuffled order, gradient accumulation, clipping, AdamW on
// the warm-up + cosine schedule), evaluation, logging and checkpoints, so that a resumed run repeats an
// uninterrupted one exactly. Scoring lives in batch_scoring.cpp, the reference in reference.cpp, the run's
// position in trainer_state.cpp; this file never changes the math of the layers below and never reads a config.
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
#include "epoch_plan.h"

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
    const auto [train_file, eval_file] = Reference::cache_files(config.ref_logps_cache(), config.output_dir());
    reference->prepare_tables(*scorer, train, eval ? &*eval : nullptr, train_file, eval_file,
                              config.eval_batch_size());
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
  {
    std::mt19937_64 first_epoch = s.run.shuffle_rng;
    s.micro_batches = detail::plan_micro_batches(
        detail::shuffled_order(s.train.size(), s.config.shuffle(), first_epoch), s.batch_plan());
  }
  s.identity_micro_batches = s.micro_per_epoch();
  s.total_steps = detail::count_steps(s.train.size(), s.config.shuffle(), s.run.shuffle_rng, s.batch_plan(),
                                      s.config.gradient_accumulation_steps(), s.config.num_train_epochs(),
                                      s.config.max_steps());
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

void Trainer::save_checkpoint(const std::string& directory) {
  auto& s = *state_;
  write_directory_atomically(directory, [&](const std::string& tmp) {
    if (s.lora) {
      s.lora->save(tmp + "/model");  // the base weights are those the run started from
    } else {
      save_llama(*s.model, tmp + "/model");
    }
    if (s.model_files_writer) s.model_files_writer(tmp + "/model");
    if (s.reference->model() && !s.reference->shares_policy() && s.config.ref_model() == RefModelMode::Copy) {
      save_llama(**s.reference->model(), tmp + "/ref_model");
    }
    torch::save(*s.optimizer, tmp + "/optimizer.pt");
    {
      torch::serialize::OutputArchive archive;
      for (const auto& [name, value] : s.objective->state()) {
        if (value.defined()) archive.write(name, value.cpu());
      }
      archive.save_to(tmp + "/loss_state.pt");
    }
    {
      torch::serialize::OutputArchive archive;
      auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCPU));
      std::lock_guard<std::mutex> lock(gen.mutex());
      archive.write("cpu", gen.get_state());
      archive.save_to(tmp + "/rng.pt");
    }
    std::ofstream out(tmp + "/trainer_state.json", std::ios::binary | std::ios::trunc);
    out << trainer_state_json(s.run, s.identity());
    out.close();
    TORCH_CHECK(out.good(), "cannot write ", tmp, "/trainer_state.json");
  });
}

void Trainer::load_checkpoint(const std::string& directory) {
  auto& s = *state_;
  const std::string state_path = files::join(directory, "trainer_state.json");
  TORCH_CHECK(files::exists(state_path), "resume_from: \"", directory, "\" is not a checkpoint (no trainer_state.json)");
  std::string text;
  {
    std::ifstream in(state_path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  // Everything is read and checked before any of the run's state changes.
  SavedTrainerState saved = parse_trainer_state(text, state_path, s.identity());

  if (s.lora) {
    TORCH_CHECK(files::exists(files::join(directory, "model/adapter_config.json")), "resume_from: \"", directory,
                "\" holds no LoRA adapter (model/adapter_config.json), but this run trains one (model.lora)");
    s.lora->load_weights(files::join(directory, "model"));
  } else {
    TORCH_CHECK(!files::exists(files::join(directory, "model/adapter_config.json")), "resume_from: \"", directory,
                "\" holds a LoRA adapter; resume it with the same model.lora settings");
    load_llama_weights(*s.model, files::join(directory, "model"));
  }
  const std::string ref_dir = files::join(directory, "ref_model");
  if (s.reference->model() && !s.reference->shares_policy() && files::exists(ref_dir)) {
    load_llama_weights(**s.reference->model(), ref_dir);
  }
  torch::load(*s.optimizer, files::join(directory, "optimizer.pt"));
  {
    torch::serialize::InputArchive archive;
    archive.load_from(files::join(directory, "loss_state.pt"));
    std::map<std::string, torch::Tensor> loss_state;
    for (const auto& [name, value] : s.objective->state()) {
      torch::Tensor t;
      if (archive.try_read(name, t)) loss_state[name] = t;
    }
    s.objective->load_state(loss_state);
  }
  {
    torch::serialize::InputArchive archive;
    archive.load_from(files::join(directory, "rng.pt"));
    torch::Tensor cpu;
    archive.read("cpu", cpu);
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCPU));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(cpu);
  }
  s.run = std::move(saved.state);
  if (s.config.max_tokens_per_batch() > 0 && s.run.order_ready) {
    s.micro_batches = detail::plan_micro_batches(s.run.order, s.batch_plan());
  }
  if (s.scaler) {
    // A checkpoint of a run without fp16 has no scaler state: the scale starts afresh.
    if (s.run.loss_scale > 0) {
      s.scaler->set_state(s.run.loss_scale, s.run.loss_scale_growth_tracker);
    } else {
      s.run.loss_scale = s.scaler->scale();
    }
  } else {
    s.run.loss_scale = 0.0;
  }
  s.schedule->set_step(s.run.global_step);
  if (saved.total_steps != s.total_steps) {
    std::fprintf(stderr,
                 "resume: %s was written by a run of %lld steps; this run has %lld, so the learning-rate schedule "
                 "(warm-up and decay) is recomputed for %lld steps and continues from step %lld\n",
                 directory.c_str(), static_cast<long long>(saved.total_steps), static_cast<long long>(s.total_steps),
                 static_cast<long long>(s.total_steps), static_cast<long long>(s.run.global_step));
  }
  s.resumed = true;
}

TrainResult Trainer::train() {
  auto& s = *state_;
  TrainResult result;
  if (!s.config.resume_from().empty() && !s.resumed) load_checkpoint(s.config.resume_from());
  const std::string out_dir = s.config.output_dir();
  std::string metrics_path;
  if (!out_dir.empty()) {
    make_directories(out_dir);
    metrics_path = files::join(out_dir, "metrics.jsonl");
    // Lines an interrupted run logged after its checkpoint would otherwise appear twice.
    if (s.resumed) MetricsWriter::truncate_after(metrics_path, s.run.global_step);
  }
  MetricsWriter metrics(metrics_path);
  s.prepare_reference_tables();
  ProgressReporter progress(s.config.progress(), s.total_steps, s.run.global_step);
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
  auto save = [&] {
    const std::string dir = files::join(out_dir, "checkpoint-" + std::to_string(s.run.global_step));
    save_checkpoint(dir);
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
    s.optimizer->zero_grad();
    MetricAverager step_avg;
    double step_loss = 0.0;
    for (int64_t m = 0; m < n_micro; ++m) {
      const auto [begin, end] = s.micro_batches[static_cast<size_t>(r.position)];
      std::vector<int64_t> idx(r.order.begin() + begin, r.order.begin() + end);
      auto out = s.objective->compute(s.score(s.train, idx, s.reference->table(false)));
      const double loss_value = out.loss.item<double>();
      TORCH_CHECK(std::isfinite(loss_value), "step ", r.global_step + 1, ": the loss is ", loss_value,
                  " (micro-batch ", m, " of epoch ", r.epoch, "); stopping before it reaches the weights");
      const double loss_scale = s.scaler ? s.scaler->scale() : 1.0;
      (out.loss * (loss_scale / static_cast<double>(n_micro))).backward();
      step_loss += loss_value / static_cast<double>(n_micro);
      for (const auto& [name, value] : out.metrics) step_avg.add(name, value.item<double>());
      ++r.position;
    }
    // fp16: gradients back to their true scale; an overflow skips the step (weights and AdamW state untouched).
    const bool skipped = s.scaler && s.scaler->unscale(s.parameters());
    double grad_norm = 0.0;
    if (!skipped) {
      grad_norm = clip_grad_norm(s.parameters(), s.config.max_grad_norm());
      s.optimizer->step();
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
    if (!out_dir.empty() && s.config.save_steps() > 0 && r.global_step % s.config.save_steps() == 0) {
      save();
      saved_last = true;
    }
  }
  progress.finish();
  if (s.eval && !evaluated_last) run_eval();
  if (!out_dir.empty()) {
    if (!saved_last) save();
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
  return result;
}

}  // namespace prefopt::train
