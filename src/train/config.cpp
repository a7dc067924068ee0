// prefopt-train's JSON run configuration: strict parsing (unknown keys, wrong types and missing required keys are
// errors naming the key's JSON path) into a RunConfig. Never loads a model or data (run.cpp does), and leaves loss
// options to the loss registry, which checks them against their declarations.
#include <prefopt/train/config.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include "../common/files.h"


namespace prefopt::train {

namespace {

using json = nlohmann::json;

// A JSON object being read: every key read is marked, and finish() rejects the ones left.
class Section {
 public:
  Section(const json& value, std::string path, std::string source) : value_(value), path_(std::move(path)),
                                                                     source_(std::move(source)) {
    TORCH_CHECK(value_.is_object(), source_, ": ", where(), "expected an object, got ", value_.type_name());
  }
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  bool has(const std::string& key) {
    known_.insert(key);
    return value_.contains(key) && !value_.at(key).is_null();
  }
  const json& at(const std::string& key) {
    known_.insert(key);
    return value_.at(key);
  }
  [[noreturn]] void type_error(const std::string& key, const char* expected) const {
    TORCH_CHECK(false, source_, ": ", key_path(key), ": expected ", expected, ", got ", value_.at(key).type_name());
    throw;  // unreachable
  }
  std::string str(const std::string& key, const std::string& fallback) {
    if (!has(key)) return fallback;
    if (!value_.at(key).is_string()) type_error(key, "a string");
    return value_.at(key).get<std::string>();
  }
  std::string required_str(const std::string& key) {
    TORCH_CHECK(has(key), source_, ": ", key_path(key), ": missing (required)");
    return str(key, "");
  }
  int64_t integer(const std::string& key, int64_t fallback) {
    if (!has(key)) return fallback;
    if (!value_.at(key).is_number_integer()) type_error(key, "an integer");
    return value_.at(key).get<int64_t>();
  }
  double real(const std::string& key, double fallback) {
    if (!has(key)) return fallback;
    if (!value_.at(key).is_number()) type_error(key, "a number");
    return value_.at(key).get<double>();
  }
  bool boolean(const std::string& key, bool fallback) {
    if (!has(key)) return fallback;
    if (!value_.at(key).is_boolean()) type_error(key, "a bool");
    return value_.at(key).get<bool>();
  }
  // A list of strings, or one string standing for a list of one.
  std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& fallback) {
    if (!has(key)) return fallback;
    const json& v = value_.at(key);
    if (v.is_string()) return {v.get<std::string>()};
    if (!v.is_array()) type_error(key, "a list of strings");
    std::vector<std::string> out;
    for (const auto& item : v) {
      TORCH_CHECK(item.is_string(), source_, ": ", key_path(key), ": expected a list of strings, got an element of type ",
                  item.type_name());
      out.push_back(item.get<std::string>());
    }
    return out;
  }
  Section section(const std::string& key) { return Section(at(key), key_path(key), source_); }
  // Runs f and prefixes its error with the key path.
  template <typename F>
  auto with_path(const std::string& key, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, source_, ": ", key_path(key), ": ", e.msg());
    }
  }
  void finish() const {
    for (const auto& item : value_.items()) {
      if (known_.count(item.key())) continue;
      std::ostringstream valid;
      bool first = true;
      for (const auto& k : known_) valid << (first ? "" : ", ") << k, first = false;
      TORCH_CHECK(false, source_, ": unknown key \"", key_path(item.key()), "\"; valid keys",
                  path_.empty() ? "" : " of " + path_, ": ", valid.str());
    }
  }

 private:
  std::string where() const { return path_.empty() ? "" : path_ + ": "; }
  const json& value_;
  std::string path_, source_;
  std::set<std::string> known_;
};

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

torch::Dtype dtype_from_string(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  TORCH_CHECK(false, "unknown dtype \"", name, "\"; valid: \"float32\", \"bfloat16\", \"float16\"");
}

}  // namespace

RunConfig parse_run_config(const std::string& json_text, const std::string& source, const std::string& base_dir) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    TORCH_CHECK(false, source, ": invalid JSON: ", e.what());
  }
  RunConfig run;
  TrainerConfig& t = run.trainer;
  Section top(root, "", source);

  // The section names are "known" keys of the top level even when absent.
  for (const char* k : {"model", "tokenizer", "data", "loss", "optimizer", "schedule", "training"}) top.has(k);
  TORCH_CHECK(top.has("model"), source, ": model: missing (required)");
  {
    Section m = top.section("model");
    const bool has_path = m.has("path"), has_config = m.has("config");
    TORCH_CHECK(has_path != has_config, source, ": model: give exactly one of model.path (a Hugging Face folder) and ",
                "model.config (a config.json object to build a new model from)");
    if (has_path) run.model_path = resolve(base_dir, m.str("path", ""));
    if (has_config) {
      const json& c = m.at("config");
      TORCH_CHECK(c.is_object(), source, ": model.config: expected an object, got ", c.type_name());
      run.model_config = m.with_path("config", [&] { return LlamaConfig::from_json_string(c.dump(), "model.config"); });
    }
    run.model_dtype = m.with_path("dtype", [&] { return dtype_from_string(m.str("dtype", "float32")); });
    if (m.has("save_dtype")) {
      t.save_dtype(m.with_path("save_dtype", [&] { return dtype_from_string(m.str("save_dtype", "float32")); }));
    }
    if (m.has("lora")) {
      Section l = m.section("lora");
      LoraConfig lora;
      lora.r(l.integer("r", lora.r()))
          .alpha(l.real("alpha", lora.alpha()))
          .dropout(l.real("dropout", lora.dropout()))
          .target_modules(l.strings("target_modules", lora.target_modules()))
          .modules_to_save(l.strings("modules_to_save", lora.modules_to_save()))
          .init(l.str("init", lora.init()))
          .use_rslora(l.boolean("use_rslora", lora.use_rslora()));
      m.with_path("lora", [&] {
        lora.validate();
        return 0;
      });
      t.lora(lora);
      t.save_merged_model(l.boolean("merge", t.save_merged_model()));
      l.finish();
    }
    m.finish();
  }
  // A checkpoint folder brings its own tokenizer: never byte-encode text for it silently.
  const bool model_has_tokenizer =
      !run.model_path.empty() && files::exists(files::join(run.model_path, "tokenizer.json"));
  run.tokenizer = model_has_tokenizer ? "hf" : "byte";
  if (top.has("tokenizer")) {
    Section k = top.section("tokenizer");
    run.tokenizer = k.str("type", run.tokenizer);
    TORCH_CHECK(run.tokenizer == "byte" || run.tokenizer == "hf", source, ": tokenizer.type: unknown tokenizer \"",
                run.tokenizer, "\"; valid: \"hf\" (a tokenizer.json folder), \"byte\"");
    if (k.has("path")) run.tokenizer_path = resolve(base_dir, k.str("path", ""));
    TORCH_CHECK(run.tokenizer == "hf" || run.tokenizer_path.empty(), source,
                ": tokenizer.path: only the \"hf\" tokenizer reads a folder, but tokenizer.type is \"byte\"");
    TORCH_CHECK(!(run.tokenizer == "byte" && model_has_tokenizer), source, ": tokenizer.type: \"byte\" would encode ",
                "text with bytes for the checkpoint ", run.model_path, ", which has its own tokenizer.json; use ",
                "\"hf\" (the default for it)");
    k.finish();
  }
  if (run.tokenizer == "hf" && run.tokenizer_path.empty()) {
    TORCH_CHECK(!run.model_path.empty(), source, ": tokenizer.path: required for tokenizer.type \"hf\" when the ",
                "model is built from model.config (there is no model folder to read the tokenizer from)");
    run.tokenizer_path = run.model_path;
  }
  TORCH_CHECK(top.has("data"), source, ": data: missing (required)");
  {
    Section d = top.section("data");
    run.train_file = resolve(base_dir, d.required_str("train"));
    run.eval_file = resolve(base_dir, d.str("eval", ""));
    run.format = d.with_path("format", [&] { return data_format_from_string(d.str("format", "pairwise")); });
    auto& e = run.encode;
    e.max_length(d.integer("max_length", e.max_length()));
    e.max_prompt_length(d.integer("max_prompt_length", e.max_prompt_length()));
    e.max_completion_length(d.integer("max_completion_length", e.max_completion_length()));
    const std::string mode = d.str("truncation_mode", "keep_end");
    TORCH_CHECK(mode == "keep_end" || mode == "keep_start", source, ": data.truncation_mode: expected \"keep_end\" ",
                "or \"keep_start\", got \"", mode, "\"");
    e.truncation_mode(mode == "keep_end" ? data::kKeepEnd : data::kKeepStart);
    // TRL tokenizes prompts with add_special_tokens=False: no BOS unless the text (or chat template) has one.
    e.add_bos(d.boolean("add_bos", run.tokenizer == "hf" ? false : e.add_bos()));
    e.add_eos(d.boolean("add_eos", e.add_eos()));
    const std::string on_error = d.str("on_error", "raise");
    TORCH_CHECK(on_error == "raise" || on_error == "skip", source, ": data.on_error: expected \"raise\" or \"skip\", ",
                "got \"", on_error, "\"");
    e.on_error(on_error == "raise" ? data::kRaise : data::kSkip);
    t.packing(d.boolean("packing", t.packing()));
    t.max_tokens_per_batch(d.integer("max_tokens_per_batch", t.max_tokens_per_batch()));
    TORCH_CHECK(t.max_tokens_per_batch() >= 0, source,
                ": data.max_tokens_per_batch: expected a non-negative integer (0: batch_size examples per micro-batch), "
                "got ", t.max_tokens_per_batch());
    d.finish();
  }
  if (top.has("loss")) {
    Section l = top.section("loss");
    t.loss(l.required_str("name"));
    l.with_path("name", [&] { return loss_option_keys(t.loss()); });  // unknown loss names fail here, with the path
    LossOptions options;
    if (l.has("options")) {
      const json& o = l.at("options");
      TORCH_CHECK(o.is_object(), source, ": loss.options: expected an object, got ", o.type_name());
      for (const auto& item : o.items()) {
        const json& v = item.value();
        const std::string path = "loss.options." + item.key();
        if (v.is_boolean()) {
          options.emplace(item.key(), OptionValue(v.get<bool>()));
        } else if (v.is_number_integer()) {
          options.emplace(item.key(), OptionValue(v.get<int64_t>()));
        } else if (v.is_number()) {
          options.emplace(item.key(), OptionValue(v.get<double>()));
        } else if (v.is_string()) {
          options.emplace(item.key(), OptionValue(v.get<std::string>()));
        } else {
          TORCH_CHECK(false, source, ": ", path, ": expected a bool, number or string, got ", v.type_name());
        }
      }
    }
    // Validate option keys and types now, not at the first step.
    l.with_path("options", [&] { return make_objective(t.loss(), options) != nullptr; });
    t.loss_options(options);
    t.ref_model(l.with_path("ref_model", [&] { return ref_model_mode_from_string(l.str("ref_model", "copy")); }));
    t.ref_logps_cache(l.str("ref_logps_cache", ""));
    l.finish();
  }
  if (top.has("optimizer")) {
    Section o = top.section("optimizer");
    const std::string type = o.str("type", "adamw");
    TORCH_CHECK(type == "adamw", source, ": optimizer.type: unknown optimizer \"", type, "\"; valid: \"adamw\"");
    t.learning_rate(o.real("learning_rate", t.learning_rate()));
    t.adam_beta1(o.real("adam_beta1", t.adam_beta1()));
    t.adam_beta2(o.real("adam_beta2", t.adam_beta2()));
    t.adam_epsilon(o.real("adam_epsilon", t.adam_epsilon()));
    t.weight_decay(o.real("weight_decay", t.weight_decay()));
    t.max_grad_norm(o.real("max_grad_norm", t.max_grad_norm()));
    o.finish();
  }
  if (top.has("schedule")) {
    Section s = top.section("schedule");
    t.lr_scheduler_type(s.str("type", t.lr_scheduler_type()));
    TORCH_CHECK(t.lr_scheduler_type() == "cosine" || t.lr_scheduler_type() == "constant", source,
                ": schedule.type: expected \"cosine\" or \"constant\", got \"", t.lr_scheduler_type(), "\"");
    t.warmup_steps(s.integer("warmup_steps", t.warmup_steps()));
    t.warmup_ratio(s.real("warmup_ratio", t.warmup_ratio()));
    t.min_lr_ratio(s.real("min_lr_ratio", t.min_lr_ratio()));
    s.finish();
  }
  if (top.has("training")) {
    Section r = top.section("training");
    t.batch_size(r.integer("batch_size", t.batch_size()));
    t.eval_batch_size(r.integer("eval_batch_size", t.eval_batch_size()));
    t.gradient_accumulation_steps(r.integer("gradient_accumulation_steps", t.gradient_accumulation_steps()));
    t.num_train_epochs(r.integer("num_train_epochs", t.num_train_epochs()));
    t.max_steps(r.integer("max_steps", t.max_steps()));
    t.shuffle(r.boolean("shuffle", t.shuffle()));
    t.logging_steps(r.integer("logging_steps", t.logging_steps()));
    t.eval_steps(r.integer("eval_steps", t.eval_steps()));
    t.save_steps(r.integer("save_steps", t.save_steps()));
    t.save_total_limit(r.integer("save_total_limit", t.save_total_limit()));
    t.output_dir(r.str("output_dir", t.output_dir()));
    t.resume_from(r.str("resume_from", t.resume_from()));
    t.save_final_model(r.boolean("save_final_model", t.save_final_model()));
    const int64_t seed = r.integer("seed", static_cast<int64_t>(t.seed()));
    TORCH_CHECK(seed >= 0, source, ": training.seed: expected a non-negative integer, got ", seed);
    t.seed(static_cast<uint64_t>(seed));
    t.progress(r.with_path("progress", [&] { return progress_mode_from_string(r.str("progress", "auto")); }));
    t.fused_linear_logps(r.boolean("fused_linear_logps", t.fused_linear_logps()));
    t.logps_chunk_bytes(r.integer("logps_chunk_bytes", t.logps_chunk_bytes()));
    TORCH_CHECK(t.logps_chunk_bytes() > 0, source, ": training.logps_chunk_bytes: expected a positive integer, got ",
                t.logps_chunk_bytes());
    t.mixed_precision(r.with_path("mixed_precision", [&] {
      return mixed_precision_from_string(r.str("mixed_precision", to_string(t.mixed_precision())));
    }));
    t.initial_loss_scale(r.real("initial_loss_scale", t.initial_loss_scale()));
    TORCH_CHECK(std::isfinite(t.initial_loss_scale()) && t.initial_loss_scale() > 0, source,
                ": training.initial_loss_scale: expected a finite number > 0, got ", t.initial_loss_scale());
    t.gradient_checkpointing(r.boolean("gradient_checkpointing", t.gradient_checkpointing()));
    t.shard_optimizer_state(r.boolean("shard_optimizer_state", t.shard_optimizer_state()));
    const std::string device = r.str("device", "cpu");
    t.device(r.with_path("device", [&] { return torch::Device(device); }));
    r.finish();
  }
  top.finish();
  return run;
}

RunConfig load_run_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, path, ": cannot open the config file");
  std::stringstream text;
  text << in.rdbuf();
  const size_t slash = path.find_last_of('/');
  const std::string base = slash == std::string::npos ? "" : path.substr(0, slash);
  return parse_run_config(text.str(), path, base);
}

}  // namespace prefopt::train
