// LoRA adapters in PEFT's format: attaching low-rank updates and modules_to_save copies to a LlamaForCausalLM,
// adapter_config.json both ways, adapter_model.safetensors with PEFT's key names, and the merged checkpoint. It
// never copies the base weights (except into the merged file) and never trains.
#include <prefopt/model/lora.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <prefopt/model/safetensors.h>

#include "../common/files.h"
#include "checkpoint_io.h"

namespace prefopt::model {
namespace {

using json = nlohmann::json;

const std::vector<std::string> kAttention = {"q_proj", "k_proj", "v_proj", "o_proj"};
const std::vector<std::string> kMlp = {"gate_proj", "up_proj", "down_proj"};
const char* kPrefix = "base_model.model.";

bool is_attention(const std::string& name) {
  return std::find(kAttention.begin(), kAttention.end(), name) != kAttention.end();
}

std::string show(const json& value) {
  std::string text = value.dump();
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

// PEFT's rule: a module is targeted when its path equals the entry or ends with "." + the entry.
bool path_matches(const std::string& path, const std::string& target) {
  if (path == target) return true;
  return path.size() > target.size() && path.compare(path.size() - target.size(), target.size(), target) == 0 &&
         path[path.size() - target.size() - 1] == '.';
}

// The PEFT key of a modules_to_save copy.
std::string saved_module_key(const std::string& module) {
  return std::string(kPrefix) + (module == "lm_head" ? "lm_head.weight" : "model.embed_tokens.weight");
}

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.is_open(), "cannot open the ", what, " '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  TORCH_CHECK(!in.bad(), "cannot read the ", what, " '", path, "'");
  return text.str();
}

}  // namespace

// ---- config ----

std::vector<std::string> LoraConfig::resolved_targets() const {
  std::set<std::string> out;
  for (const auto& t : target_modules_) {
    if (t == "all-linear") {
      out.insert(kAttention.begin(), kAttention.end());
      out.insert(kMlp.begin(), kMlp.end());
    } else {
      out.insert(t);
    }
  }
  return {out.begin(), out.end()};
}

bool LoraConfig::targets(const std::string& module_path) const {
  const std::vector<std::string> all = resolved_targets();
  return std::any_of(all.begin(), all.end(), [&](const std::string& t) { return path_matches(module_path, t); });
}

void LoraConfig::validate() const {
  TORCH_CHECK(r_ > 0, "lora.r must be > 0, got ", r_);
  TORCH_CHECK(std::isfinite(alpha_) && alpha_ > 0, "lora.alpha must be finite and > 0, got ", alpha_);
  TORCH_CHECK(dropout_ >= 0 && dropout_ < 1, "lora.dropout must be in [0, 1), got ", dropout_);
  TORCH_CHECK(!target_modules_.empty(), "lora.target_modules must name at least one projection");
  for (const auto& t : target_modules_) {
    const std::string last = t.substr(t.find_last_of('.') == std::string::npos ? 0 : t.find_last_of('.') + 1);
    TORCH_CHECK(t == "all-linear" || is_attention(last) || std::find(kMlp.begin(), kMlp.end(), last) != kMlp.end(),
                "lora.target_modules: unknown module '", t, "'; supported: q_proj, k_proj, v_proj, o_proj, gate_proj, "
                "up_proj, down_proj (or a module path ending in one), all-linear");
  }
  for (const auto& m : modules_to_save_) {
    TORCH_CHECK(m == "lm_head" || m == "embed_tokens", "lora.modules_to_save: unsupported module '", m,
                "'; supported: lm_head, embed_tokens");
  }
  TORCH_CHECK(init_ == "default" || init_ == "gaussian" || init_ == "random", "lora.init must be \"default\", ",
              "\"gaussian\" or \"random\", got \"", init_, "\"");
}

std::string LoraConfig::to_json_string(const std::string& base_model_name_or_path) const {
  validate();
  using ojson = nlohmann::ordered_json;
  ojson j;
  j["base_model_name_or_path"] = base_model_name_or_path.empty() ? ojson(nullptr) : ojson(base_model_name_or_path);
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = init_ == "default" ? ojson(true) : init_ == "gaussian" ? ojson("gaussian") : ojson(false);
  j["lora_alpha"] = alpha_ == std::floor(alpha_) ? ojson(static_cast<int64_t>(alpha_)) : ojson(alpha_);
  j["lora_dropout"] = dropout_;
  j["modules_to_save"] = modules_to_save_.empty() ? ojson(nullptr) : ojson(modules_to_save_);
  j["peft_type"] = "LORA";
  j["r"] = r_;
  j["target_modules"] = resolved_targets();
  j["task_type"] = "CAUSAL_LM";
  j["use_dora"] = false;
  j["use_rslora"] = use_rslora_;
  return j.dump(2) + "\n";
}

LoraConfig LoraConfig::from_json_string(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text, [](int depth, json::parse_event_t, json&) {
      TORCH_CHECK(depth <= 16, "nesting deeper than 16 levels");
      return true;
    });
  } catch (const json::exception& e) {
    TORCH_CHECK(false, source, ": not valid JSON: ", e.what());
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, source, ": not an adapter config: ", e.msg());
  }
  TORCH_CHECK(root.is_object(), source, ": the adapter config must be a JSON object");
  auto has = [&](const char* key) { return root.contains(key) && !root.at(key).is_null(); };
  auto where = [&](const char* key) { return source + ": " + key; };
  auto names = [&](const char* key) {
    const json& list = root.at(key);
    const bool strings = list.is_array() && std::all_of(list.begin(), list.end(), [](const json& v) { return v.is_string(); });
    TORCH_CHECK(strings, where(key), " must be a list of module names, got ", show(list));
    return list.get<std::vector<std::string>>();
  };
  TORCH_CHECK(has("peft_type") && root.at("peft_type") == "LORA", where("peft_type"), " must be \"LORA\", got ",
              has("peft_type") ? show(root.at("peft_type")) : std::string("nothing"));
  LoraConfig c;
  TORCH_CHECK(has("r") && root.at("r").is_number_integer(), where("r"), " must be an integer, got ",
              has("r") ? show(root.at("r")) : std::string("nothing"));
  c.r(root.at("r").get<int64_t>());
  if (has("lora_alpha")) {
    TORCH_CHECK(root.at("lora_alpha").is_number(), where("lora_alpha"), " must be a number, got ",
                show(root.at("lora_alpha")));
    c.alpha(root.at("lora_alpha").get<double>());
  }
  if (has("lora_dropout")) {
    TORCH_CHECK(root.at("lora_dropout").is_number(), where("lora_dropout"), " must be a number, got ",
                show(root.at("lora_dropout")));
    c.dropout(root.at("lora_dropout").get<double>());
  }
  TORCH_CHECK(has("target_modules"), where("target_modules"), " is required");
  const json& targets = root.at("target_modules");
  if (targets.is_string()) {
    TORCH_CHECK(targets.get<std::string>() == "all-linear", where("target_modules"), " is the pattern ",
                show(targets), "; only a list of module names or \"all-linear\" is supported");
    c.target_modules({"all-linear"});
  } else {
    c.target_modules(names("target_modules"));
  }
  if (has("modules_to_save")) c.modules_to_save(names("modules_to_save"));
  if (has("init_lora_weights")) {
    const json& init = root.at("init_lora_weights");
    if (init.is_boolean()) {
      c.init(init.get<bool>() ? "default" : "random");
    } else {
      TORCH_CHECK(init == "gaussian", where("init_lora_weights"), " is ", show(init),
                  "; supported: true, false, \"gaussian\" (initialisations that change the base weights, such as "
                  "PiSSA or OLoRA, are not)");
      c.init("gaussian");
    }
  }
  if (has("use_rslora")) {
    TORCH_CHECK(root.at("use_rslora").is_boolean(), where("use_rslora"), " must be true or false");
    c.use_rslora(root.at("use_rslora").get<bool>());
  }
  // What prefopt does not implement must not load as a silently different adapter.
  TORCH_CHECK(!has("bias") || root.at("bias") == "none", where("bias"), " is ", show(root.at("bias")),
              "; only \"none\" is supported");
  for (const char* flag : {"use_dora", "fan_in_fan_out", "lora_bias", "use_qalora"}) {
    TORCH_CHECK(!has(flag) || root.at(flag) == false, where(flag), " is ", show(root.at(flag)),
                "; only false is supported");
  }
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    TORCH_CHECK(!has(pattern) || (root.at(pattern).is_object() && root.at(pattern).empty()), where(pattern), " is ",
                show(root.at(pattern)), "; per-module ranks and alphas are not supported");
  }
  for (const char* unsupported : {"layers_to_transform", "layers_pattern", "exclude_modules", "target_parameters",
                                  "trainable_token_indices", "layer_replication"}) {
    TORCH_CHECK(!has(unsupported) || (root.at(unsupported).is_array() && root.at(unsupported).empty()),
                where(unsupported), " is ", show(root.at(unsupported)), "; not supported");
  }
  if (has("task_type")) {
    TORCH_CHECK(root.at("task_type") == "CAUSAL_LM", where("task_type"), " is ", show(root.at("task_type")),
                "; only \"CAUSAL_LM\" adapters are supported");
  }
  try {
    c.validate();
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, source, ": ", e.what_without_backtrace());
  }
  return c;
}

// ---- the adapter ----

struct LoraAdapter::Update final : ProjectionUpdate {
  torch::Tensor A, B;  // [r, in], [out, r]
  double scaling = 1.0, dropout = 0.0;
  const torch::nn::Module* owner = nullptr;  // the attention or MLP block, for its train / eval mode

  torch::Tensor forward(const torch::Tensor& x) override {
    const torch::Tensor in = dropout > 0 && owner->is_training() ? at::dropout(x, dropout, /*train=*/true) : x;
    return at::linear(at::linear(in, A), B) * scaling;
  }
  std::vector<torch::Tensor> parameters() const override { return {A, B}; }
};

LoraAdapter::LoraAdapter(LlamaForCausalLM model, LoraConfig config) : model_(std::move(model)), config_(std::move(config)) {
  TORCH_CHECK(model_, "LoraAdapter: the model must not be empty");
  config_.validate();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
  std::vector<std::string> projections = kAttention;
  projections.insert(projections.end(), kMlp.begin(), kMlp.end());
  const std::vector<std::string> targets = config_.resolved_targets();
  std::set<std::string> matched;  // the entries of target_modules that found a module
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_->model->layers->size(); ++i) {
    auto* block = model_->model->layers[i]->as<LlamaDecoderLayerImpl>();
    for (const auto& name : projections) {
      const bool attention = is_attention(name);
      const std::string path = "model.layers." + std::to_string(i) + (attention ? ".self_attn." : ".mlp.") + name;
      bool targeted = false;
      for (const auto& t : targets) {
        if (path_matches(path, t)) {
          matched.insert(t);
          targeted = true;
        }
      }
      if (!targeted) continue;
      torch::nn::Linear linear = name == "q_proj"      ? block->self_attn->q_proj
                                 : name == "k_proj"    ? block->self_attn->k_proj
                                 : name == "v_proj"    ? block->self_attn->v_proj
                                 : name == "o_proj"    ? block->self_attn->o_proj
                                 : name == "gate_proj" ? block->mlp->gate_proj
                                 : name == "up_proj"   ? block->mlp->up_proj
                                                       : block->mlp->down_proj;
      ProjectionUpdates& slots = attention ? block->self_attn->updates : block->mlp->updates;
      TORCH_CHECK(!slots.by_name.count(name), "LoraAdapter: layer ", i, "'s ", name, " already has an adapter");
      const torch::Tensor& w = linear->weight;
      auto update = std::make_shared<Update>();
      update->A = torch::empty({config_.r(), w.size(1)}, w.options().requires_grad(false));
      update->B = torch::zeros({w.size(0), config_.r()}, w.options().requires_grad(false));
      if (config_.init() == "gaussian") {
        update->A.normal_(0.0, 1.0 / static_cast<double>(config_.r()));
      } else {
        // PEFT (and nn.Linear's reset_parameters): Kaiming-uniform with a = sqrt(5), bound 1 / sqrt(fan_in).
        torch::nn::init::kaiming_uniform_(update->A, std::sqrt(5.0));
        if (config_.init() == "random") torch::nn::init::kaiming_uniform_(update->B, std::sqrt(5.0));
      }
      update->A.set_requires_grad(true);
      update->B.set_requires_grad(true);
      update->scaling = config_.scaling();
      update->dropout = config_.dropout();
      update->owner = attention ? static_cast<const torch::nn::Module*>(block->self_attn.get())
                                : static_cast<const torch::nn::Module*>(block->mlp.get());
      slots.by_name[name] = update;
      updates_.emplace_back(path, update);
    }
  }
  for (const auto& t : targets) {
    TORCH_CHECK(matched.count(t), "lora.target_modules: '", t, "' matches no projection of this model (",
                model_->model->layers->size(), " layers)");
  }
  for (const auto& module : config_.modules_to_save()) {
    torch::Tensor copy;
    if (module == "lm_head") {
      copy = model_->lm_head_weight().detach().clone().requires_grad_(true);
      model_->lm_head_override = copy;
    } else {
      copy = model_->model->embed_tokens->weight.detach().clone().requires_grad_(true);
      model_->model->embed_tokens_override = copy;
    }
    saved_modules_.emplace_back(saved_module_key(module), copy);
  }
  std::sort(updates_.begin(), updates_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::sort(saved_modules_.begin(), saved_modules_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  model_->set_adapters_enabled(true);
  attached_ = true;
}

LoraAdapter::~LoraAdapter() { detach(); }

void LoraAdapter::detach() {
  if (!attached_) return;
  for (size_t i = 0; i < model_->model->layers->size(); ++i) {
    auto* block = model_->model->layers[i]->as<LlamaDecoderLayerImpl>();
    block->self_attn->updates.by_name.clear();
    block->mlp->updates.by_name.clear();
  }
  model_->lm_head_override = torch::Tensor();
  model_->model->embed_tokens_override = torch::Tensor();
  attached_ = false;
}

std::vector<std::pair<std::string, torch::Tensor>> LoraAdapter::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [path, update] : updates_) {
    out.emplace_back(kPrefix + path + ".lora_A.weight", update->A);
    out.emplace_back(kPrefix + path + ".lora_B.weight", update->B);
  }
  out.insert(out.end(), saved_modules_.begin(), saved_modules_.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::vector<torch::Tensor> LoraAdapter::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& item : named_parameters()) out.push_back(item.second);
  return out;
}

void LoraAdapter::save(const std::string& directory, std::optional<torch::Dtype> dtype,
                       const std::string& base_model_name_or_path) const {
  const std::string error = files::make_directories(directory);
  TORCH_CHECK(error.empty(), "cannot create the folder '", directory, "': ", error);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, value] : named_parameters()) {
    tensors.emplace_back(name, dtype ? value.detach().to(*dtype) : value.detach());
  }
  safetensors::save_file(files::join(directory, "adapter_model.safetensors"), tensors, {{"format", "pt"}});
  const std::string written = files::write_text_atomically(files::join(directory, "adapter_config.json"),
                                                           config_.to_json_string(base_model_name_or_path));
  TORCH_CHECK(written.empty(), written);
}

void LoraAdapter::load_weights(const std::string& directory) {
  const std::string config_path = files::join(directory, "adapter_config.json");
  const LoraConfig saved = LoraConfig::from_json_string(read_text(config_path, "adapter config"), config_path);
  TORCH_CHECK(saved.r() == config_.r() && saved.resolved_targets() == config_.resolved_targets() &&
                  std::set<std::string>(saved.modules_to_save().begin(), saved.modules_to_save().end()) ==
                      std::set<std::string>(config_.modules_to_save().begin(), config_.modules_to_save().end()),
              config_path, " describes another adapter (r ", saved.r(), ", ", saved.resolved_targets().size(),
              " target modules, ", saved.modules_to_save().size(), " modules to save) than this one (r ", config_.r(),
              ", ", config_.resolved_targets().size(), ", ", config_.modules_to_save().size(), ")");
  TORCH_CHECK(saved.scaling() == config_.scaling(), config_path, ": lora_alpha / r gives the scaling ", saved.scaling(),
              ", this adapter's is ", config_.scaling());
  const std::string weights_path = files::join(directory, "adapter_model.safetensors");
  const safetensors::File file(weights_path);
  const auto params = named_parameters();
  std::set<std::string> expected;
  for (const auto& [name, value] : params) {
    expected.insert(name);
    TORCH_CHECK(file.contains(name), weights_path, " has no tensor '", name, "'");
    const auto& entry = file.entry(name);
    TORCH_CHECK(entry.shape == value.sizes().vec(), "tensor '", name, "' in '", weights_path, "' has shape ",
                io::shape_string(entry.shape), "; the adapter expects ", io::shape_string(value.sizes()));
  }
  for (const auto& entry : file.entries()) {
    TORCH_CHECK(expected.count(entry.name), "tensor '", entry.name, "' in '", weights_path,
                "' is not part of this adapter");
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, value] : params) value.copy_(file.load(name));
}

std::unique_ptr<LoraAdapter> LoraAdapter::load(LlamaForCausalLM model, const std::string& directory) {
  const std::string config_path = files::join(directory, "adapter_config.json");
  auto adapter = std::make_unique<LoraAdapter>(
      std::move(model), LoraConfig::from_json_string(read_text(config_path, "adapter config"), config_path));
  adapter->load_weights(directory);
  return adapter;
}

void LoraAdapter::save_merged(const std::string& directory, std::optional<torch::Dtype> dtype) const {
  std::map<std::string, torch::Tensor> replaced;
  torch::NoGradGuard no_grad;
  for (const auto& [path, update] : updates_) {
    // W + scaling * B A in float32 (float64 for a float64 model), then back to the weight's dtype.
    const std::string key = path + ".weight";
    const torch::Tensor weight = model_->named_parameters()[key];
    const auto compute = weight.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    const torch::Tensor delta = update->B.to(compute).matmul(update->A.to(compute)) * update->scaling;
    replaced[key] = (weight.to(compute) + delta).to(weight.scalar_type());
  }
  TORCH_CHECK(config_.modules_to_save().empty() || !model_->config().tie_word_embeddings(),
              "save_merged: the model ties lm_head to embed_tokens, so a separately trained copy of one of them "
              "(modules_to_save) cannot be merged into it");
  for (const auto& module : config_.modules_to_save()) {
    if (module == "lm_head") {
      replaced["lm_head.weight"] = model_->lm_head_override.detach();
    } else {
      replaced["model.embed_tokens.weight"] = model_->model->embed_tokens_override.detach();
    }
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
    const auto found = replaced.find(item.key());
    tensors.emplace_back(item.key(), found != replaced.end() ? found->second : item.value());
  }
  io::save_checkpoint_folder(tensors, model_->config(), directory, dtype);
}

}  // namespace prefopt::model
