// The Trainer: scores micro-batches with the policy (and a frozen or precomputed reference), calls the loss chosen
// in the registry, accumulates gradients, clips, steps AdamW on the warm-up + cosine schedule, logs, evaluates and
// checkpoints so that a resumed run repeats an uninterrupted one exactly. Never changes the math of the layers
// below and never reads a config file.
#include <prefopt/train/trainer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <torch/autograd.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <prefopt/metrics.h>
#include <prefopt/scoring.h>
#include <prefopt/sequence_reductions.h>
#include <prefopt/train/checkpoint.h>
#include <prefopt/train/logging.h>
#include <prefopt/train/optim.h>
#include <prefopt/train/schedule.h>

#include "../model/posix_files.h"

namespace prefopt::train {

std::string to_string(RefModelMode mode) { return mode == RefModelMode::Copy ? "copy" : "precomputed"; }

RefModelMode ref_model_mode_from_string(std::string_view name) {
  if (name == "copy") return RefModelMode::Copy;
  if (name == "precomputed") return RefModelMode::Precomputed;
  TORCH_CHECK(false, "unknown ref_model \"", std::string(name), "\"; valid values: \"copy\", \"precomputed\"");
}

std::string to_string(ProgressMode mode) {
  switch (mode) {
    case ProgressMode::Auto: return "auto";
    case ProgressMode::Bar: return "bar";
    case ProgressMode::Lines: return "lines";
    case ProgressMode::Silent: return "silent";
  }
  return "?";
}

ProgressMode progress_mode_from_string(std::string_view name) {
  if (name == "auto") return ProgressMode::Auto;
  if (name == "bar") return ProgressMode::Bar;
  if (name == "lines") return ProgressMode::Lines;
  if (name == "silent") return ProgressMode::Silent;
  TORCH_CHECK(false, "unknown progress mode \"", std::string(name),
              "\"; valid values: \"auto\", \"bar\", \"lines\", \"silent\"");
}

namespace {

constexpr int64_t kIgnore = -100;

// FNV-1a over the token ids of a dataset: the key that ties a reference cache to the data it was computed on.
struct Fingerprint {
  uint64_t h = 1469598103934665603ull;
  void add(int64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= static_cast<uint64_t>(v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  }
  void add(const std::vector<int64_t>& ids) {
    add(static_cast<int64_t>(ids.size()));
    for (auto id : ids) add(id);
  }
};

int64_t fingerprint(const Dataset& d) {
  Fingerprint f;
  f.add(static_cast<int64_t>(d.format));
  for (const auto& p : d.pairs) f.add(p.prompt), f.add(p.chosen), f.add(p.rejected);
  for (const auto& l : d.lists) {
    f.add(l.prompt);
    for (const auto& r : l.responses) f.add(r);
  }
  for (const auto& u : d.unpaired) f.add(u.prompt), f.add(u.completion);
  for (const auto& c : d.completions) f.add(c.prompt), f.add(c.completion);
  return static_cast<int64_t>(f.h & 0x7fffffffffffffffull);
}

// Averages of named values over examples; NaN values (metrics undefined on a batch) are left out.
struct Averager {
  std::map<std::string, std::pair<double, double>> sums;  // name -> (weighted sum, weight)
  void add(const std::string& name, double value, double weight = 1.0) {
    auto& s = sums[name];
    if (std::isnan(value)) return;
    s.first += value * weight;
    s.second += weight;
  }
  std::map<std::string, double> means() const {
    std::map<std::string, double> out;
    for (const auto& [name, s] : sums) out[name] = s.second > 0 ? s.first / s.second : NAN;
    return out;
  }
  void clear() { sums.clear(); }
};


}  // namespace

struct Trainer::State {
  TrainerConfig config;
  LlamaForCausalLM model{nullptr};
  LlamaForCausalLM ref{nullptr};
  Dataset train;
  std::optional<Dataset> eval;
  std::unique_ptr<Objective> objective;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<LRSchedule> schedule;
  int64_t pad_id = 0;
  int64_t micro_per_epoch = 0;
  int64_t total_steps = 0;

  // Data position.
  int64_t global_step = 0, epoch = 0, position = 0;
  std::vector<int64_t> order;
  bool order_ready = false;
  std::mt19937_64 rng;

  // Precomputed reference log-probs, keyed by dataset index: pairs [N, 2], lists [N, Kmax], unpaired [N, 2]
  // (the example and its KL pair). Undefined until computed or loaded.
  torch::Tensor train_ref, eval_ref;

  Averager log_acc;
  int64_t log_acc_steps = 0;
  bool resumed = false;
  std::function<void(const LogEntry&, bool)> callback;

  bool uses_reference() const { return objective->needs_reference(); }
  bool precomputed() const { return uses_reference() && config.ref_model() == RefModelMode::Precomputed; }

  data::CollateOptions collate_options() const { return data::CollateOptions().pad_token_id(pad_id); }

  template <typename T>
  static std::vector<T> gather(const std::vector<T>& all, const std::vector<int64_t>& idx) {
    std::vector<T> out;
    out.reserve(idx.size());
    for (auto i : idx) out.push_back(all[static_cast<size_t>(i)]);
    return out;
  }

  // The KL pair of unpaired example i: its prompt with the completion of example i - 1 (mod N) in dataset order,
  // a dataset-level rotation so the pair is fixed per index and can be precomputed.
  static std::vector<data::UnpairedExample> kl_pairs(const Dataset& d, const std::vector<int64_t>& idx) {
    const int64_t n = static_cast<int64_t>(d.unpaired.size());
    std::vector<data::UnpairedExample> out;
    for (auto i : idx) {
      data::UnpairedExample ex = d.unpaired[static_cast<size_t>(i)];
      ex.completion = d.unpaired[static_cast<size_t>((i + n - 1) % n)].completion;
      out.push_back(std::move(ex));
    }
    return out;
  }

  // Summed and per-token log-probs of `labels` under `m`: from logits, or (fused_linear_logps) from the hidden
  // states through the chunked fused-linear operator, so no [B, T, V] tensor is formed.
  SequenceLogps score_sequences(LlamaForCausalLM& m, const torch::Tensor& ids, const torch::Tensor& mask,
                                const torch::Tensor& labels) {
    if (!config.fused_linear_logps()) return sequence_logps(m->forward(ids, mask), labels);
    const torch::Tensor hidden = m->hidden_states(ids, mask);
    const int64_t b = hidden.size(0), t = hidden.size(1);
    const torch::Tensor per_token =
        prefopt::fused_linear_logps(hidden.reshape({b * t, hidden.size(2)}), m->lm_head_weight(),
                                    labels.reshape({b * t}),
                                    FusedLinearLogpsOptions().ignore_index(kIgnore).chunk_bytes(config.logps_chunk_bytes()))
            .view({b, t});
    return {per_token.sum(1), per_token};
  }

  // Scores the micro-batch `idx` of `data` into ObjectiveInputs. `cache` holds precomputed reference log-probs
  // for `data` (undefined: use the live reference). Gradients flow into the policy scores when grad mode is on.
  ObjectiveInputs score(const Dataset& data, const std::vector<int64_t>& idx, const torch::Tensor& cache) {
    const auto dev = config.device();
    ObjectiveInputs in;
    const bool need_ref = uses_reference();
    const bool live_ref = need_ref && (!cache.defined() || objective->needs_token_kl());
    torch::Tensor idx_t = torch::tensor(idx, torch::kLong);
    auto ref_forward = [&](const torch::Tensor& ids, const torch::Tensor& mask) {
      torch::NoGradGuard guard;
      return ref->forward(ids, mask);
    };
    auto ref_scores = [&](const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& labels) {
      torch::NoGradGuard guard;
      return score_sequences(ref, ids, mask, labels).logps;
    };
    switch (data.format) {
      case DataFormat::Pairwise: {
        auto batch = data::collate_pairs(gather(data.pairs, idx), collate_options());
        const int64_t b = batch.num_pairs;
        auto ids = batch.input_ids.to(dev), mask = batch.attention_mask.to(dev), labels = batch.labels.to(dev);
        const bool with_logits = objective->needs_token_kl();
        torch::Tensor logits = with_logits ? model->forward(ids, mask) : torch::Tensor();
        auto sl = with_logits ? sequence_logps(logits, labels) : score_sequences(model, ids, mask, labels);
        in.policy_chosen = sl.logps.slice(0, 0, b);
        in.policy_rejected = sl.logps.slice(0, b, 2 * b);
        auto lengths = batch.completion_lengths.to(dev, torch::kFloat32);
        in.chosen_lengths = lengths.slice(0, 0, b);
        in.rejected_lengths = lengths.slice(0, b, 2 * b);
        in.chosen_nll = mean_token_nll(sl.token_logps.slice(0, 0, b), labels.slice(0, 0, b).ne(kIgnore));
        if (need_ref) {
          if (live_ref) {
            torch::Tensor ref_logits = with_logits ? ref_forward(ids, mask) : torch::Tensor();
            auto rl = with_logits ? sequence_logps(ref_logits, labels).logps : ref_scores(ids, mask, labels);
            in.ref_chosen = rl.slice(0, 0, b);
            in.ref_rejected = rl.slice(0, b, 2 * b);
            if (with_logits) {
              auto kl = prefopt::sequence_kl(logits, ref_logits.detach(), labels, kIgnore);
              in.chosen_kl = kl.slice(0, 0, b);
              in.rejected_kl = kl.slice(0, b, 2 * b);
            }
          } else {
            auto r = cache.index_select(0, idx_t).to(dev);
            in.ref_chosen = r.select(1, 0).contiguous();
            in.ref_rejected = r.select(1, 1).contiguous();
          }
        }
        break;
      }
      case DataFormat::Completions: {
        std::vector<std::vector<int64_t>> prompts, completions;
        for (auto i : idx) {
          prompts.push_back(data.completions[static_cast<size_t>(i)].prompt);
          completions.push_back(data.completions[static_cast<size_t>(i)].completion);
        }
        auto batch = data::collate_sequences(prompts, completions, collate_options());
        auto labels = batch.labels.to(dev);
        auto sl = score_sequences(model, batch.input_ids.to(dev), batch.attention_mask.to(dev), labels);
        in.policy_chosen = sl.logps;
        in.chosen_lengths = batch.completion_lengths.to(dev, torch::kFloat32);
        in.chosen_nll = mean_token_nll(sl.token_logps, labels.ne(kIgnore));
        break;
      }
      case DataFormat::Ranked: {
        auto batch = data::collate_lists(gather(data.lists, idx), collate_options());
        const int64_t b = batch.num_lists, k = batch.list_size;
        auto ids = batch.input_ids.to(dev), mask = batch.attention_mask.to(dev), labels = batch.labels.to(dev);
        in.policy_lists = score_sequences(model, ids, mask, labels).logps.view({b, k});
        in.list_lengths = batch.completion_lengths.to(dev, torch::kFloat32).view({b, k});
        in.list_labels = batch.list_labels.to(dev, torch::kFloat32);
        in.list_mask = batch.list_mask.to(dev);
        in.list_labels_are_ranks = batch.label_kind == data::ListLabelKind::Ranks;
        if (need_ref) {
          if (live_ref) {
            in.ref_lists = ref_scores(ids, mask, labels).view({b, k});
          } else {
            in.ref_lists = cache.index_select(0, idx_t).slice(1, 0, k).to(dev).contiguous();
          }
        }
        break;
      }
      case DataFormat::Unpaired: {
        auto batch = data::collate_unpaired(gather(data.unpaired, idx), collate_options());
        auto ids = batch.input_ids.to(dev), mask = batch.attention_mask.to(dev), labels = batch.labels.to(dev);
        in.policy = score_sequences(model, ids, mask, labels).logps;
        in.desirable = batch.desirable.to(dev);
        torch::Tensor kl_ids, kl_mask, kl_labels;
        if (objective->needs_kl_pairs()) {
          auto kl_batch = data::collate_unpaired(kl_pairs(data, idx), collate_options());
          kl_ids = kl_batch.input_ids.to(dev);
          kl_mask = kl_batch.attention_mask.to(dev);
          kl_labels = kl_batch.labels.to(dev);
          torch::NoGradGuard guard;  // z0 is detached in the loss anyway
          in.policy_kl = score_sequences(model, kl_ids, kl_mask, kl_labels).logps;
        }
        if (need_ref) {
          if (live_ref) {
            in.ref = ref_scores(ids, mask, labels);
            if (objective->needs_kl_pairs()) in.ref_kl = ref_scores(kl_ids, kl_mask, kl_labels);
          } else {
            auto r = cache.index_select(0, idx_t).to(dev);
            in.ref = r.select(1, 0).contiguous();
            if (objective->needs_kl_pairs()) in.ref_kl = r.select(1, 1).contiguous();
          }
        }
        break;
      }
    }
    return in;
  }

  // Reference log-probs of every example of `data`, in dataset order (see train_ref).
  torch::Tensor compute_ref_cache(const Dataset& data) {
    torch::NoGradGuard guard;
    const int64_t n = data.size();
    const int64_t bs = std::max<int64_t>(1, config.eval_batch_size());
    int64_t kmax = 2;
    if (data.format == DataFormat::Ranked) {
      kmax = 1;
      for (const auto& l : data.lists) kmax = std::max<int64_t>(kmax, static_cast<int64_t>(l.responses.size()));
    }
    torch::Tensor out = torch::zeros({n, kmax}, torch::kFloat32);
    for (int64_t start = 0; start < n; start += bs) {
      std::vector<int64_t> idx(static_cast<size_t>(std::min(bs, n - start)));
      std::iota(idx.begin(), idx.end(), start);
      const auto dev = config.device();
      auto rows = out.slice(0, start, start + static_cast<int64_t>(idx.size()));
      switch (data.format) {
        case DataFormat::Pairwise: {
          auto batch = data::collate_pairs(gather(data.pairs, idx), collate_options());
          auto lp = score_sequences(ref, batch.input_ids.to(dev), batch.attention_mask.to(dev), batch.labels.to(dev))
                        .logps.cpu();
          const int64_t b = batch.num_pairs;
          rows.select(1, 0).copy_(lp.slice(0, 0, b));
          rows.select(1, 1).copy_(lp.slice(0, b, 2 * b));
          break;
        }
        case DataFormat::Ranked: {
          auto batch = data::collate_lists(gather(data.lists, idx), collate_options());
          auto lp = score_sequences(ref, batch.input_ids.to(dev), batch.attention_mask.to(dev), batch.labels.to(dev))
                        .logps.cpu()
                        .view({batch.num_lists, batch.list_size});
          rows.slice(1, 0, batch.list_size).copy_(lp);
          break;
        }
        case DataFormat::Unpaired: {
          auto batch = data::collate_unpaired(gather(data.unpaired, idx), collate_options());
          rows.select(1, 0).copy_(
              score_sequences(ref, batch.input_ids.to(dev), batch.attention_mask.to(dev), batch.labels.to(dev))
                  .logps.cpu());
          if (objective->needs_kl_pairs()) {
            auto kl = data::collate_unpaired(kl_pairs(data, idx), collate_options());
            rows.select(1, 1).copy_(
                score_sequences(ref, kl.input_ids.to(dev), kl.attention_mask.to(dev), kl.labels.to(dev)).logps.cpu());
          }
          break;
        }
        case DataFormat::Completions:
          break;
      }
    }
    return out;
  }

  // Loads the cache file when it matches `data`, else computes and writes it (atomically).
  torch::Tensor ref_cache_for(const Dataset& data, const std::string& path) {
    const int64_t fp = fingerprint(data);
    if (!path.empty() && model_files::exists(path)) {
      torch::serialize::InputArchive archive;
      archive.load_from(path);
      torch::Tensor values, key;
      archive.read("ref_logps", values);
      archive.read("fingerprint", key);
      if (key.item<int64_t>() == fp && values.size(0) == data.size()) return values;
    }
    auto values = compute_ref_cache(data);
    if (!path.empty()) {
      torch::serialize::OutputArchive archive;
      archive.write("ref_logps", values);
      archive.write("fingerprint", torch::tensor(fp, torch::kLong));
      const std::string tmp = path + ".tmp";
      archive.save_to(tmp);
      TORCH_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename \"", tmp, "\" to \"", path, "\"");
    }
    return values;
  }

  std::string cache_path(bool eval_set) const {
    std::string base = config.ref_logps_cache();
    if (base.empty()) {
      if (config.output_dir().empty()) return "";
      base = model_files::join(config.output_dir(), "ref_logps.pt");
    }
    if (!eval_set) return base;
    const size_t dot = base.rfind(".pt");
    return dot != std::string::npos && dot + 3 == base.size() ? base.substr(0, dot) + "_eval.pt" : base + "_eval";
  }

  void prepare_ref_caches() {
    if (!precomputed() || objective->needs_token_kl()) return;
    if (!config.output_dir().empty()) make_directories(config.output_dir());
    if (!train_ref.defined()) train_ref = ref_cache_for(train, cache_path(false));
    if (eval && !eval_ref.defined()) eval_ref = ref_cache_for(*eval, cache_path(true));
  }

  void make_order() {
    const int64_t n = train.size();
    order.resize(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    if (config.shuffle()) {
      // Fisher-Yates with the raw engine output, so the order depends only on the engine (which the standard
      // fixes), not on a library's distribution implementation.
      for (int64_t i = n - 1; i > 0; --i) {
        const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
        std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
      }
    }
    order_ready = true;
  }

  double fractional_epoch() const {
    return static_cast<double>(epoch) + static_cast<double>(position) / static_cast<double>(micro_per_epoch);
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
  // SFT on pairs trains on the chosen responses.
  auto as_completions = [](const Dataset& d) {
    std::vector<CompletionExample> c;
    for (const auto& p : d.pairs) c.push_back({p.prompt, p.chosen});
    return Dataset::from_completions(std::move(c));
  };
  if (s.objective->name() == "sft" && train_data.format == DataFormat::Pairwise) train_data = as_completions(train_data);
  if (s.objective->name() == "sft" && eval_data && eval_data->format == DataFormat::Pairwise) {
    eval_data = as_completions(*eval_data);
  }
  TORCH_CHECK(s.objective->accepts(train_data.format), "loss \"", s.config.loss(), "\" does not train on ",
              to_string(train_data.format), " data");
  if (eval_data) {
    TORCH_CHECK(eval_data->format == train_data.format, "eval data is ", to_string(eval_data->format),
                " but the training data is ", to_string(train_data.format));
    TORCH_CHECK(eval_data->size() >= 1, "the eval data is empty");
  }
  TORCH_CHECK(!(s.objective->needs_token_kl() && s.config.ref_model() == RefModelMode::Precomputed), "loss \"",
              s.config.loss(), "\" needs the reference model's full token distributions (per-token KL), so ",
              "ref_model must be \"copy\", not \"precomputed\"");
  s.train = std::move(train_data);
  s.eval = std::move(eval_data);

  s.model = model;
  s.model->to(s.config.device());
  s.model->train();
  if (s.model->config().pad_token_id()) s.pad_id = *s.model->config().pad_token_id();
  if (s.objective->needs_reference()) {
    s.ref = std::dynamic_pointer_cast<LlamaForCausalLMImpl>(s.model->clone(s.config.device()));
    TORCH_CHECK(s.ref, "Trainer: cloning the reference model failed");
    for (auto& p : s.ref->parameters()) p.set_requires_grad(false);
    s.ref->eval();
  }
  seed_torch(s.config.seed());
  s.rng.seed(s.config.seed());

  const int64_t n = s.train.size();
  s.micro_per_epoch = (n + s.config.batch_size() - 1) / s.config.batch_size();
  const int64_t steps_per_epoch =
      (s.micro_per_epoch + s.config.gradient_accumulation_steps() - 1) / s.config.gradient_accumulation_steps();
  s.total_steps = s.config.max_steps() > 0 ? s.config.max_steps() : steps_per_epoch * s.config.num_train_epochs();
  s.optimizer = make_adamw(s.model->parameters(), s.config.learning_rate(), s.config.adam_beta1(),
                           s.config.adam_beta2(), s.config.adam_epsilon(), s.config.weight_decay());
  TORCH_CHECK(s.config.warmup_steps() >= 0, "warmup_steps must be >= 0, got ", s.config.warmup_steps());
  const int64_t warmup =
      LRSchedule::resolve_warmup(s.config.warmup_steps(), s.config.warmup_ratio(), s.total_steps);
  s.schedule = std::make_unique<LRSchedule>(s.config.learning_rate(), s.total_steps, warmup, s.config.min_lr_ratio(),
                                            s.config.lr_scheduler_type());
}

Trainer::~Trainer() = default;

LlamaForCausalLM Trainer::model() const { return state_->model; }
const TrainerConfig& Trainer::config() const { return state_->config; }
int64_t Trainer::global_step() const { return state_->global_step; }
int64_t Trainer::total_steps() const { return state_->total_steps; }
void Trainer::set_log_callback(std::function<void(const LogEntry&, bool)> callback) {
  state_->callback = std::move(callback);
}

std::map<std::string, double> Trainer::evaluate() {
  TORCH_CHECK(state_->eval.has_value(), "evaluate(): no eval data was given to the Trainer");
  state_->prepare_ref_caches();
  auto& s = *state_;
  // evaluate(data) looks the cache up only for the eval set given at construction.
  return evaluate(*s.eval);
}

std::map<std::string, double> Trainer::evaluate(const Dataset& data) {
  auto& s = *state_;
  Dataset converted;
  const Dataset* d = &data;
  if (s.objective->name() == "sft" && data.format == DataFormat::Pairwise) {
    std::vector<CompletionExample> c;
    for (const auto& p : data.pairs) c.push_back({p.prompt, p.chosen});
    converted = Dataset::from_completions(std::move(c));
    d = &converted;
  }
  TORCH_CHECK(s.objective->accepts(d->format), "evaluate: loss \"", s.config.loss(), "\" does not take ",
              to_string(d->format), " data");
  TORCH_CHECK(d->size() >= 1, "evaluate: the data is empty");
  const bool is_own_eval = s.eval && &data == &*s.eval;
  const torch::Tensor cache = is_own_eval && s.eval_ref.defined() ? s.eval_ref : torch::Tensor();
  const bool was_training = s.model->is_training();
  s.model->eval();
  torch::NoGradGuard guard;
  Averager avg;
  std::vector<torch::Tensor> acc, tau, ndcg_v;
  const int64_t n = d->size();
  for (int64_t start = 0; start < n; start += s.config.eval_batch_size()) {
    std::vector<int64_t> idx(static_cast<size_t>(std::min(s.config.eval_batch_size(), n - start)));
    std::iota(idx.begin(), idx.end(), start);
    auto in = s.score(*d, idx, cache);
    auto out = s.objective->compute(in);
    const double w = static_cast<double>(idx.size());
    avg.add("loss", out.loss.item<double>(), w);
    for (const auto& [name, value] : out.metrics) avg.add(name, value.item<double>(), w);
    if (d->format == DataFormat::Ranked) {
      auto scores = out.rewards.defined() ? out.rewards
                                          : (in.ref_lists.defined() ? in.policy_lists - in.ref_lists : in.policy_lists);
      // Ranks (lower is better) become grades for the metrics: max rank of the list minus rank.
      auto labels = in.list_labels.to(torch::kFloat64);
      if (in.list_labels_are_ranks) {
        auto masked = labels.masked_fill(in.list_mask.logical_not(), -1e300);
        labels = std::get<0>(masked.max(1, true)) - labels;
      }
      acc.push_back(ranking_accuracy(scores.to(torch::kFloat64), labels, in.list_mask).cpu());
      tau.push_back(kendall_tau(scores.to(torch::kFloat64), labels, in.list_mask).cpu());
      ndcg_v.push_back(ndcg(scores.to(torch::kFloat64), labels, in.list_mask).cpu());
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
    save_llama(*s.model, tmp + "/model");
    if (s.ref && s.config.ref_model() == RefModelMode::Copy) save_llama(*s.ref, tmp + "/ref_model");
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
    nlohmann::json st;
    st["global_step"] = s.global_step;
    st["schedule_step"] = s.schedule->current_step();
    st["epoch"] = s.epoch;
    st["position"] = s.position;
    st["order_ready"] = s.order_ready;
    st["order"] = s.order;
    std::ostringstream rng;
    rng << s.rng;
    st["shuffle_rng"] = rng.str();
    nlohmann::json acc = nlohmann::json::object();
    for (const auto& [name, sw] : s.log_acc.sums) acc[name] = {sw.first, sw.second};
    st["log_accumulators"] = acc;
    st["log_accumulated_steps"] = s.log_acc_steps;
    st["check"] = {{"loss", s.config.loss()},
                   {"batch_size", s.config.batch_size()},
                   {"gradient_accumulation_steps", s.config.gradient_accumulation_steps()},
                   {"dataset_size", s.train.size()},
                   {"dataset_fingerprint", fingerprint(s.train)},
                   {"total_steps", s.total_steps}};
    std::ofstream out(tmp + "/trainer_state.json", std::ios::binary | std::ios::trunc);
    out << st.dump(1) << "\n";
    out.close();
    TORCH_CHECK(out.good(), "cannot write ", tmp, "/trainer_state.json");
  });
}

void Trainer::load_checkpoint(const std::string& directory) {
  auto& s = *state_;
  const std::string state_path = model_files::join(directory, "trainer_state.json");
  TORCH_CHECK(model_files::exists(state_path), "resume_from: \"", directory,
              "\" is not a checkpoint (no trainer_state.json)");
  nlohmann::json st;
  {
    std::ifstream in(state_path, std::ios::binary);
    try {
      st = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      TORCH_CHECK(false, state_path, ": invalid JSON: ", e.what());
    }
  }
  const auto& check = st.at("check");
  auto expect = [&](const char* key, const nlohmann::json& now) {
    TORCH_CHECK(check.at(key) == now, "resume_from \"", directory, "\": the checkpoint was written with ", key, " = ",
                check.at(key).dump(), " but this run has ", now.dump());
  };
  expect("loss", s.config.loss());
  expect("batch_size", s.config.batch_size());
  expect("gradient_accumulation_steps", s.config.gradient_accumulation_steps());
  expect("dataset_size", s.train.size());
  expect("dataset_fingerprint", fingerprint(s.train));
  expect("total_steps", s.total_steps);

  load_llama_weights(*s.model, model_files::join(directory, "model"));
  const std::string ref_dir = model_files::join(directory, "ref_model");
  if (s.ref && model_files::exists(ref_dir)) load_llama_weights(*s.ref, ref_dir);
  torch::load(*s.optimizer, model_files::join(directory, "optimizer.pt"));
  {
    torch::serialize::InputArchive archive;
    archive.load_from(model_files::join(directory, "loss_state.pt"));
    std::map<std::string, torch::Tensor> loss_state;
    for (const auto& [name, value] : s.objective->state()) {
      torch::Tensor t;
      if (archive.try_read(name, t)) loss_state[name] = t;
    }
    s.objective->load_state(loss_state);
  }
  {
    torch::serialize::InputArchive archive;
    archive.load_from(model_files::join(directory, "rng.pt"));
    torch::Tensor cpu;
    archive.read("cpu", cpu);
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCPU));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(cpu);
  }
  s.global_step = st.at("global_step").get<int64_t>();
  s.schedule->set_step(st.at("schedule_step").get<int64_t>());
  s.epoch = st.at("epoch").get<int64_t>();
  s.position = st.at("position").get<int64_t>();
  s.order_ready = st.at("order_ready").get<bool>();
  s.order = st.at("order").get<std::vector<int64_t>>();
  std::istringstream rng(st.at("shuffle_rng").get<std::string>());
  rng >> s.rng;
  TORCH_CHECK(!rng.fail(), state_path, ": shuffle_rng is not a std::mt19937_64 state");
  s.log_acc.clear();
  for (const auto& [name, sw] : st.at("log_accumulators").items()) {
    s.log_acc.sums[name] = {sw.at(0).get<double>(), sw.at(1).get<double>()};
  }
  s.log_acc_steps = st.at("log_accumulated_steps").get<int64_t>();
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
    metrics_path = model_files::join(out_dir, "metrics.jsonl");
    // Lines an interrupted run logged after its checkpoint would otherwise appear twice.
    if (s.resumed) MetricsWriter::truncate_after(metrics_path, s.global_step);
  }
  MetricsWriter metrics(metrics_path);
  s.prepare_ref_caches();
  ProgressReporter progress(s.config.progress(), s.total_steps, s.global_step);
  auto emit = [&](const LogEntry& entry, bool is_eval) {
    metrics.append(entry);
    progress.log(entry, is_eval);
    (is_eval ? result.evals : result.logs).push_back(entry);
    if (s.callback) s.callback(entry, is_eval);
  };
  auto run_eval = [&] {
    LogEntry entry;
    entry.step = s.global_step;
    entry.epoch = s.fractional_epoch();
    entry.metrics = evaluate(*s.eval);
    emit(entry, true);
  };
  auto save = [&] {
    const std::string dir = model_files::join(out_dir, "checkpoint-" + std::to_string(s.global_step));
    save_checkpoint(dir);
    result.last_checkpoint = dir;
    if (s.config.save_total_limit() > 0) {
      auto all = list_checkpoints(out_dir);
      const auto limit = static_cast<size_t>(s.config.save_total_limit());
      for (size_t i = 0; i + limit < all.size(); ++i) remove_directory_tree(all[i]);
    }
  };

  s.model->train();
  const int64_t n = s.train.size();
  const int64_t bs = s.config.batch_size();
  bool evaluated_last = false, saved_last = false;
  while (s.global_step < s.total_steps) {
    if (!s.order_ready) s.make_order();
    const int64_t n_micro = std::min(s.config.gradient_accumulation_steps(), s.micro_per_epoch - s.position);
    const double lr = s.schedule->lr();
    set_learning_rate(*s.optimizer, lr);
    s.optimizer->zero_grad();
    Averager step_avg;
    double step_loss = 0.0;
    for (int64_t m = 0; m < n_micro; ++m) {
      const int64_t begin = s.position * bs, end = std::min(n, begin + bs);
      std::vector<int64_t> idx(s.order.begin() + begin, s.order.begin() + end);
      auto in = s.score(s.train, idx, s.train_ref);
      auto out = s.objective->compute(in);
      const double loss_value = out.loss.item<double>();
      TORCH_CHECK(std::isfinite(loss_value), "step ", s.global_step + 1, ": the loss is ", loss_value,
                  " (micro-batch ", m, " of epoch ", s.epoch, "); stopping before it reaches the weights");
      (out.loss / static_cast<double>(n_micro)).backward();
      step_loss += loss_value / static_cast<double>(n_micro);
      for (const auto& [name, value] : out.metrics) step_avg.add(name, value.item<double>());
      ++s.position;
    }
    const double grad_norm = clip_grad_norm(s.model->parameters(), s.config.max_grad_norm());
    s.optimizer->step();
    s.schedule->step();
    ++s.global_step;
    if (s.position >= s.micro_per_epoch) {
      ++s.epoch;
      s.position = 0;
      s.order_ready = false;
    }
    LogEntry entry;
    entry.step = s.global_step;
    entry.epoch = s.fractional_epoch();
    entry.metrics = step_avg.means();
    entry.metrics["loss"] = step_loss;
    entry.metrics["grad_norm"] = grad_norm;
    entry.metrics["learning_rate"] = lr;
    result.steps.push_back(entry);
    for (const auto& [name, value] : entry.metrics) s.log_acc.add(name, value);
    ++s.log_acc_steps;
    progress.step(s.global_step, entry.metrics);

    evaluated_last = saved_last = false;
    if (s.global_step % s.config.logging_steps() == 0 || s.global_step == s.total_steps) {
      LogEntry log;
      log.step = s.global_step;
      log.epoch = entry.epoch;
      log.metrics = s.log_acc.means();
      // The rate and norm of the last step, as transformers logs them.
      log.metrics["learning_rate"] = lr;
      log.metrics["grad_norm"] = grad_norm;
      log.metrics["epoch"] = entry.epoch;
      s.log_acc.clear();
      s.log_acc_steps = 0;
      emit(log, false);
    }
    if (s.eval && s.config.eval_steps() > 0 && s.global_step % s.config.eval_steps() == 0) {
      run_eval();
      evaluated_last = true;
    }
    if (!out_dir.empty() && s.config.save_steps() > 0 && s.global_step % s.config.save_steps() == 0) {
      save();
      saved_last = true;
    }
  }
  progress.finish();
  if (s.eval && !evaluated_last) run_eval();
  if (!out_dir.empty()) {
    if (!saved_last) save();
    if (s.config.save_final_model()) {
      write_directory_atomically(model_files::join(out_dir, "final"),
                                 [&](const std::string& tmp) { save_llama(*s.model, tmp); });
    }
  }
  result.global_step = s.global_step;
  return result;
}

}  // namespace prefopt::train
