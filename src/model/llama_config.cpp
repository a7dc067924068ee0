// Reads and writes LlamaConfig as Hugging Face config.json, with the fields, defaults and refusals documented
// in include/prefopt/model/llama_config.h. It never guesses: a field it does not understand the value of is an
// error that names the field, never a silently different model.
#include <prefopt/model/llama_config.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

namespace prefopt::model {
namespace {

using json = nlohmann::json;

std::string show(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

// Typed access to optional fields of one JSON object, with errors naming the source and the field.
class Fields {
 public:
  Fields(const json& object, std::string source, std::string prefix = "")
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  const json& at(const char* key) const { return object_.at(key); }
  std::string where(const char* key) const { return source_ + ": " + prefix_ + key; }

  int64_t integer(const char* key, int64_t fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    TORCH_CHECK(v.is_number_integer(), where(key), " must be an integer, got ", show(v));
    return v.get<int64_t>();
  }
  std::optional<int64_t> optional_integer(const char* key) const {
    if (!has(key)) return std::nullopt;
    return integer(key, 0);
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    TORCH_CHECK(v.is_number(), where(key), " must be a number, got ", show(v));
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    TORCH_CHECK(v.is_boolean(), where(key), " must be true or false, got ", show(v));
    return v.get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    TORCH_CHECK(v.is_string(), where(key), " must be a string, got ", show(v));
    return v.get<std::string>();
  }

 private:
  const json& object_;
  std::string source_;
  std::string prefix_;
};

const char* rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::kLinear:
      return "linear";
    case RopeType::kLlama3:
      return "llama3";
    case RopeType::kDynamic:
      return "dynamic";
    default:
      return "default";
  }
}

// Reads rope_parameters (transformers 5) or rope_scaling + rope_theta (earlier files) into the config.
void read_rope(const json& root, const Fields& top, const std::string& source, LlamaConfig& config) {
  const char* key = top.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  double theta = top.number("rope_theta", 10000.0);
  if (top.has("partial_rotary_factor")) {
    TORCH_CHECK(top.number("partial_rotary_factor", 1.0) == 1.0, top.where("partial_rotary_factor"), " is ",
                show(top.at("partial_rotary_factor")), "; only 1 (rotation of the whole head) is supported");
  }
  RopeScaling scaling;
  if (top.has(key)) {
    const json& rope = root.at(key);
    TORCH_CHECK(rope.is_object(), top.where(key), " must be an object, got ", show(rope));
    for (const auto& [name, value] : rope.items()) {
      TORCH_CHECK(!value.is_object(), top.where(key), ".", name,
                  " is an object: per-layer-type rope parameters are not supported");
    }
    const Fields f(rope, source, std::string(key) + ".");
    std::string type = f.string("rope_type", f.string("type", "default"));
    theta = f.number("rope_theta", theta);
    if (f.has("partial_rotary_factor")) {
      TORCH_CHECK(f.number("partial_rotary_factor", 1.0) == 1.0, f.where("partial_rotary_factor"), " is ",
                  show(f.at("partial_rotary_factor")), "; only 1 (rotation of the whole head) is supported");
    }
    if (type == "default") {
      scaling.rope_type(RopeType::kDefault);
    } else if (type == "linear" || type == "dynamic") {
      TORCH_CHECK(f.has("factor"), f.where("factor"), " is required for rope_type '", type, "'");
      scaling.rope_type(type == "linear" ? RopeType::kLinear : RopeType::kDynamic).factor(f.number("factor", 1.0));
    } else if (type == "llama3") {
      for (const char* needed : {"factor", "low_freq_factor", "high_freq_factor"}) {
        TORCH_CHECK(f.has(needed), f.where(needed), " is required for rope_type 'llama3'");
      }
      scaling.rope_type(RopeType::kLlama3)
          .factor(f.number("factor", 1.0))
          .low_freq_factor(f.number("low_freq_factor", 1.0))
          .high_freq_factor(f.number("high_freq_factor", 4.0))
          .original_max_position_embeddings(
              f.integer("original_max_position_embeddings", config.max_position_embeddings()));
    } else {
      TORCH_CHECK(false, f.where(f.has("rope_type") ? "rope_type" : "type"), " is '", type,
                  "'; supported: 'default', 'linear', 'llama3', 'dynamic'");
    }
  }
  config.rope_theta(theta).rope_scaling(scaling);
}

}  // namespace

namespace {

// What distinguishes each architecture's Hugging Face config class: its names and the defaults of fields a file
// may omit (transformers 5).
struct ArchitectureInfo {
  LlamaArchitecture architecture;
  const char* model_type;
  const char* class_prefix;
  int64_t vocab_size, intermediate_size, max_position_embeddings;
  int64_t head_dim;            // 0: hidden_size / num_attention_heads
  int64_t key_value_heads;     // 0: num_attention_heads
  std::optional<int64_t> bos;  // default bos_token_id
  std::optional<int64_t> eos;  // default eos_token_id
};

const ArchitectureInfo kArchitectures[] = {
    {LlamaArchitecture::kLlama, "llama", "Llama", 32000, 11008, 2048, 0, 0, 1, 2},
    {LlamaArchitecture::kQwen2, "qwen2", "Qwen2", 151936, 22016, 32768, 0, 32, std::nullopt, std::nullopt},
    {LlamaArchitecture::kQwen3, "qwen3", "Qwen3", 151936, 22016, 32768, 128, 32, std::nullopt, std::nullopt},
    {LlamaArchitecture::kMistral, "mistral", "Mistral", 32000, 14336, 131072, 0, 8, 1, 2},
};

const ArchitectureInfo& info_of(LlamaArchitecture architecture) {
  for (const auto& info : kArchitectures) {
    if (info.architecture == architecture) return info;
  }
  TORCH_CHECK(false, "LlamaConfig: unknown architecture ", static_cast<int>(architecture));
}

std::string supported_list(bool classes) {
  std::string out;
  for (const auto& info : kArchitectures) {
    const std::string prefix = info.class_prefix;
    if (classes) {
      for (const char* head : {"ForCausalLM", "ForSequenceClassification"}) {
        out += (out.empty() ? "'" : ", '") + prefix + head + "'";
      }
    } else {
      out += (out.empty() ? "'" : ", '") + std::string(info.model_type) + "'";
    }
  }
  return out;
}

}  // namespace

int64_t LlamaConfig::resolved_head_dim() const {
  if (head_dim_ > 0) return head_dim_;
  return num_attention_heads_ > 0 ? hidden_size_ / num_attention_heads_ : 0;
}

int64_t LlamaConfig::layer_sliding_window(int64_t layer) const {
  if (sliding_window_ <= 0) return 0;
  if (layer_types_.empty()) return sliding_window_;
  TORCH_CHECK(layer >= 0 && layer < static_cast<int64_t>(layer_types_.size()), "LlamaConfig: layer ", layer,
              " out of range [0, ", layer_types_.size(), ")");
  return layer_types_[static_cast<size_t>(layer)] == "sliding_attention" ? sliding_window_ : 0;
}

std::string LlamaConfig::architecture_name() const {
  return std::string(info_of(architecture_).class_prefix) +
         (num_labels_ >= 1 ? "ForSequenceClassification" : "ForCausalLM");
}

std::string LlamaConfig::model_type() const { return info_of(architecture_).model_type; }

void LlamaConfig::validate() const {
  const std::string c = "LlamaConfig: ";
  TORCH_CHECK(vocab_size_ > 0, c, "vocab_size must be > 0, got ", vocab_size_);
  TORCH_CHECK(hidden_size_ > 0, c, "hidden_size must be > 0, got ", hidden_size_);
  TORCH_CHECK(intermediate_size_ > 0, c, "intermediate_size must be > 0, got ", intermediate_size_);
  TORCH_CHECK(num_hidden_layers_ >= 0, c, "num_hidden_layers must be >= 0, got ", num_hidden_layers_);
  TORCH_CHECK(num_attention_heads_ > 0, c, "num_attention_heads must be > 0, got ", num_attention_heads_);
  TORCH_CHECK(num_key_value_heads_ > 0 && num_attention_heads_ % num_key_value_heads_ == 0, c,
              "num_key_value_heads must be > 0 and divide num_attention_heads (", num_attention_heads_, "), got ",
              num_key_value_heads_);
  TORCH_CHECK(head_dim_ >= 0, c, "head_dim must be > 0 (or 0 for hidden_size / num_attention_heads), got ", head_dim_);
  if (head_dim_ == 0) {
    TORCH_CHECK(hidden_size_ % num_attention_heads_ == 0, c, "hidden_size (", hidden_size_,
                ") must be a multiple of num_attention_heads (", num_attention_heads_, ") when head_dim is not given");
  }
  const int64_t hd = resolved_head_dim();
  TORCH_CHECK(hd > 0 && hd % 2 == 0, c, "head_dim must be even for rotary embeddings, got ", hd);
  TORCH_CHECK(rms_norm_eps_ > 0 && std::isfinite(rms_norm_eps_), c, "rms_norm_eps must be > 0, got ", rms_norm_eps_);
  TORCH_CHECK(rope_theta_ > 0 && std::isfinite(rope_theta_), c, "rope_theta must be > 0, got ", rope_theta_);
  TORCH_CHECK(max_position_embeddings_ > 0, c, "max_position_embeddings must be > 0, got ", max_position_embeddings_);
  TORCH_CHECK(initializer_range_ >= 0 && std::isfinite(initializer_range_), c, "initializer_range must be >= 0, got ",
              initializer_range_);
  if (pad_token_id_) {
    TORCH_CHECK(*pad_token_id_ >= 0 && *pad_token_id_ < vocab_size_, c, "pad_token_id must be in [0, vocab_size = ",
                vocab_size_, "), got ", *pad_token_id_);
  }
  TORCH_CHECK(sliding_window_ >= 0, c, "sliding_window must be >= 0 (0 = none), got ", sliding_window_);
  TORCH_CHECK(layer_types_.empty() || static_cast<int64_t>(layer_types_.size()) == num_hidden_layers_, c,
              "layer_types must be empty or list one type per layer (", num_hidden_layers_, "), got ",
              layer_types_.size());
  for (size_t i = 0; i < layer_types_.size(); ++i) {
    TORCH_CHECK(layer_types_[i] == "full_attention" || layer_types_[i] == "sliding_attention", c, "layer_types[", i,
                "] is '", layer_types_[i], "'; supported: 'full_attention', 'sliding_attention'");
  }
  TORCH_CHECK(!(architecture_ == LlamaArchitecture::kQwen2 && attention_bias_), c,
              "attention_bias does not apply to Qwen2 (its q/k/v biases are fixed by the architecture)");
  TORCH_CHECK(!(architecture_ != LlamaArchitecture::kLlama && mlp_bias_), c, "mlp_bias is only supported for Llama");
  TORCH_CHECK(!(architecture_ == LlamaArchitecture::kLlama && sliding_window_ > 0), c,
              "Llama has no sliding-window attention; sliding_window must be 0, got ", sliding_window_);
  const RopeScaling& r = rope_scaling_;
  if (r.rope_type() != RopeType::kDefault) {
    TORCH_CHECK(r.factor() > 0 && std::isfinite(r.factor()), c, "rope_scaling.factor must be > 0, got ", r.factor());
  }
  if (r.rope_type() == RopeType::kLlama3) {
    TORCH_CHECK(r.low_freq_factor() > 0 && r.high_freq_factor() > r.low_freq_factor(), c,
                "rope_scaling needs 0 < low_freq_factor < high_freq_factor, got ", r.low_freq_factor(), " and ",
                r.high_freq_factor());
    TORCH_CHECK(r.original_max_position_embeddings() > 0, c,
                "rope_scaling.original_max_position_embeddings must be > 0, got ", r.original_max_position_embeddings());
  }
}

LlamaConfig LlamaConfig::from_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.is_open(), "cannot open the model config '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  TORCH_CHECK(!in.bad(), "cannot read the model config '", path, "'");
  return from_json_string(text.str(), path);
}

LlamaConfig LlamaConfig::from_json_string(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    TORCH_CHECK(false, source, ": not valid JSON: ", e.what());
  }
  TORCH_CHECK(root.is_object(), source, ": the config must be a JSON object");
  const Fields f(root, source);

  // The architecture: architectures[0] and model_type must name the same supported family.
  const ArchitectureInfo* from_architectures = nullptr;
  const ArchitectureInfo* from_model_type = nullptr;
  bool classifier = false;
  std::string class_name;
  if (f.has("architectures")) {
    const json& list = root.at("architectures");
    TORCH_CHECK(list.is_array() && list.size() == 1 && list[0].is_string(), f.where("architectures"),
                " must be a list of one architecture name, got ", show(list));
    class_name = list[0].get<std::string>();
    for (const auto& info : kArchitectures) {
      const std::string prefix = info.class_prefix;
      if (class_name == prefix + "ForCausalLM" || class_name == prefix + "ForSequenceClassification") {
        from_architectures = &info;
        classifier = class_name == prefix + "ForSequenceClassification";
      }
    }
    TORCH_CHECK(from_architectures != nullptr, f.where("architectures"), " is '", class_name, "'; supported: ",
                supported_list(true));
  }
  if (f.has("model_type")) {
    const std::string name = f.string("model_type", "");
    for (const auto& info : kArchitectures) {
      if (name == info.model_type) from_model_type = &info;
    }
    TORCH_CHECK(from_model_type != nullptr, f.where("model_type"), " is '", name, "'; supported: ",
                supported_list(false));
  }
  TORCH_CHECK(from_architectures != nullptr || from_model_type != nullptr, source,
              ": neither architectures nor model_type is given; cannot tell which model this is");
  if (from_architectures != nullptr && from_model_type != nullptr) {
    TORCH_CHECK(from_architectures == from_model_type, f.where("model_type"), " is '", from_model_type->model_type,
                "' but architectures names '", class_name, "'");
  }
  const ArchitectureInfo& arch = from_architectures != nullptr ? *from_architectures : *from_model_type;
  const LlamaArchitecture a = arch.architecture;
  const bool qwen = a == LlamaArchitecture::kQwen2 || a == LlamaArchitecture::kQwen3;

  LlamaConfig config;
  config.architecture(a);
  if (classifier) {
    // transformers: num_labels is the size of id2label, 2 by default.
    int64_t labels = 2;
    if (f.has("id2label")) {
      const json& id2label = root.at("id2label");
      TORCH_CHECK(id2label.is_object() && !id2label.empty(), f.where("id2label"),
                  " must be a non-empty object of label names, got ", show(id2label));
      labels = static_cast<int64_t>(id2label.size());
    }
    config.num_labels(labels);
  }
  config.vocab_size(f.integer("vocab_size", arch.vocab_size))
      .hidden_size(f.integer("hidden_size", 4096))
      .intermediate_size(f.integer("intermediate_size", arch.intermediate_size))
      .num_hidden_layers(f.integer("num_hidden_layers", 32))
      .num_attention_heads(f.integer("num_attention_heads", 32));
  config.num_key_value_heads(
            f.integer("num_key_value_heads", arch.key_value_heads > 0 ? arch.key_value_heads : config.num_attention_heads()))
      .head_dim(f.integer("head_dim", arch.head_dim))
      .rms_norm_eps(f.number("rms_norm_eps", 1e-6))
      .max_position_embeddings(f.integer("max_position_embeddings", arch.max_position_embeddings))
      .tie_word_embeddings(f.boolean("tie_word_embeddings", false))
      .initializer_range(f.number("initializer_range", 0.02))
      .pad_token_id(f.optional_integer("pad_token_id"))
      .bos_token_id(root.contains("bos_token_id") ? f.optional_integer("bos_token_id") : arch.bos);
  TORCH_CHECK(!f.has("head_dim") || config.head_dim() > 0, f.where("head_dim"), " must be > 0, got ",
              config.head_dim());
  if (f.has("eos_token_id")) {
    const json& eos = root.at("eos_token_id");
    std::vector<int64_t> ids;
    if (eos.is_number_integer()) {
      ids.push_back(eos.get<int64_t>());
    } else {
      TORCH_CHECK(eos.is_array(), f.where("eos_token_id"), " must be an integer or a list of integers, got ", show(eos));
      for (const auto& id : eos) {
        TORCH_CHECK(id.is_number_integer(), f.where("eos_token_id"), " must be an integer or a list of integers, got ",
                    show(eos));
        ids.push_back(id.get<int64_t>());
      }
    }
    config.eos_token_ids(ids);
  } else if (arch.eos && !root.contains("eos_token_id")) {
    config.eos_token_ids({*arch.eos});
  }
  config.torch_dtype(f.has("dtype") ? f.string("dtype", "") : f.string("torch_dtype", ""));

  const std::string act = f.string("hidden_act", "silu");
  TORCH_CHECK(act == "silu" || act == "swish", f.where("hidden_act"), " is '", act,
              "'; only 'silu' (SwiGLU) is supported");
  TORCH_CHECK(f.number("attention_dropout", 0.0) == 0.0, f.where("attention_dropout"), " is ",
              show(root.at("attention_dropout")), "; only 0 is supported (no dropout is implemented)");
  // Qwen2's q/k/v biases are fixed by its architecture, so a file's attention_bias is ignored; Mistral has no
  // such field.
  if (a == LlamaArchitecture::kLlama || a == LlamaArchitecture::kQwen3) {
    config.attention_bias(f.boolean("attention_bias", false));
  }
  if (a == LlamaArchitecture::kLlama) config.mlp_bias(f.boolean("mlp_bias", false));

  const int64_t layers = config.num_hidden_layers();
  if (a == LlamaArchitecture::kMistral) {
    // MistralConfig's sliding_window defaults to 4096 and applies to every layer; null turns it off.
    if (!root.contains("sliding_window")) {
      config.sliding_window(4096);
    } else if (f.has("sliding_window")) {
      const int64_t window = f.integer("sliding_window", 0);
      TORCH_CHECK(window > 0, f.where("sliding_window"), " must be null or > 0, got ", window);
      config.sliding_window(window);
    }
  } else if (qwen) {
    // Qwen2Config / Qwen3Config: sliding_window only counts with use_sliding_window, and layer_types (given,
    // or derived from max_window_layers) says which layers use it.
    int64_t window = 0;
    if (f.boolean("use_sliding_window", false)) {
      window = root.contains("sliding_window") ? (f.has("sliding_window") ? f.integer("sliding_window", 0) : 0) : 4096;
      TORCH_CHECK(window >= 0, f.where("sliding_window"), " must be null or > 0, got ", window);
    }
    std::vector<std::string> types;
    if (f.has("layer_types")) {
      const json& list = root.at("layer_types");
      TORCH_CHECK(list.is_array() && static_cast<int64_t>(list.size()) == layers, f.where("layer_types"),
                  " must list one type per layer (", layers, "), got ", show(list));
      for (size_t i = 0; i < list.size(); ++i) {
        const bool known = list[i].is_string() && (list[i].get<std::string>() == "full_attention" ||
                                                   list[i].get<std::string>() == "sliding_attention");
        TORCH_CHECK(known, f.where("layer_types"), "[", i, "] is ", show(list[i]),
                    "; supported: 'full_attention', 'sliding_attention'");
        types.push_back(list[i].get<std::string>());
      }
    } else {
      const int64_t first_sliding = f.integer("max_window_layers", 28);
      for (int64_t i = 0; i < layers; ++i) {
        types.push_back(window > 0 && i >= first_sliding ? "sliding_attention" : "full_attention");
      }
    }
    for (size_t i = 0; i < types.size(); ++i) {
      TORCH_CHECK(types[i] == "full_attention" || window > 0, f.where("layer_types"), "[", i,
                  "] is 'sliding_attention' but no sliding window is set (use_sliding_window is false or "
                  "sliding_window is null)");
    }
    config.sliding_window(window).layer_types(types);
  }
  read_rope(root, f, source, config);
  try {
    config.validate();
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, source, ": ", e.what_without_backtrace());
  }
  return config;
}

std::string LlamaConfig::to_json_string() const {
  const LlamaArchitecture a = architecture_;
  const bool qwen = a == LlamaArchitecture::kQwen2 || a == LlamaArchitecture::kQwen3;
  using ojson = nlohmann::ordered_json;
  ojson j;
  j["architectures"] = ojson::array({architecture_name()});
  j["model_type"] = model_type();
  j["vocab_size"] = vocab_size_;
  j["hidden_size"] = hidden_size_;
  j["intermediate_size"] = intermediate_size_;
  j["num_hidden_layers"] = num_hidden_layers_;
  j["num_attention_heads"] = num_attention_heads_;
  j["num_key_value_heads"] = num_key_value_heads_;
  j["head_dim"] = resolved_head_dim();
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps_;
  ojson rope;
  rope["rope_type"] = rope_type_name(rope_scaling_.rope_type());
  rope["rope_theta"] = rope_theta_;
  if (rope_scaling_.rope_type() != RopeType::kDefault) rope["factor"] = rope_scaling_.factor();
  if (rope_scaling_.rope_type() == RopeType::kLlama3) {
    rope["low_freq_factor"] = rope_scaling_.low_freq_factor();
    rope["high_freq_factor"] = rope_scaling_.high_freq_factor();
    rope["original_max_position_embeddings"] = rope_scaling_.original_max_position_embeddings();
  }
  j["rope_parameters"] = rope;
  // transformers 4 (which TRL 0.28 needs) and most Hub checkpoints read rope_theta + rope_scaling and ignore
  // rope_parameters: writing both keeps a rope-scaled model's positions right in either version.
  j["rope_theta"] = rope_theta_;
  if (rope_scaling_.rope_type() == RopeType::kDefault) {
    j["rope_scaling"] = nullptr;
  } else {
    ojson legacy = rope;
    legacy.erase("rope_theta");
    j["rope_scaling"] = legacy;
  }
  j["max_position_embeddings"] = max_position_embeddings_;
  j["tie_word_embeddings"] = tie_word_embeddings_;
  j["initializer_range"] = initializer_range_;
  j["attention_dropout"] = 0.0;
  if (a == LlamaArchitecture::kLlama || a == LlamaArchitecture::kQwen3) j["attention_bias"] = attention_bias_;
  if (a == LlamaArchitecture::kLlama) j["mlp_bias"] = mlp_bias_;
  if (a == LlamaArchitecture::kMistral) {
    j["sliding_window"] = sliding_window_ > 0 ? ojson(sliding_window_) : ojson(nullptr);
  } else if (qwen) {
    std::vector<std::string> types = layer_types_;
    if (types.empty()) {
      types.assign(static_cast<size_t>(num_hidden_layers_), sliding_window_ > 0 ? "sliding_attention" : "full_attention");
    }
    j["use_sliding_window"] = sliding_window_ > 0;
    j["sliding_window"] = sliding_window_ > 0 ? ojson(sliding_window_) : ojson(nullptr);
    j["max_window_layers"] = num_hidden_layers_;  // layer_types, written below, is what transformers uses
    j["layer_types"] = types;
  }
  j["pad_token_id"] = pad_token_id_ ? ojson(*pad_token_id_) : ojson(nullptr);
  j["bos_token_id"] = bos_token_id_ ? ojson(*bos_token_id_) : ojson(nullptr);
  if (eos_token_ids_.empty()) {
    j["eos_token_id"] = nullptr;
  } else if (eos_token_ids_.size() == 1) {
    j["eos_token_id"] = eos_token_ids_[0];
  } else {
    j["eos_token_id"] = eos_token_ids_;
  }
  if (!torch_dtype_.empty()) j["dtype"] = torch_dtype_;
  if (num_labels_ >= 1) {
    ojson id2label = ojson::object(), label2id = ojson::object();
    for (int64_t i = 0; i < num_labels_; ++i) {
      id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
      label2id["LABEL_" + std::to_string(i)] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
  }
  return j.dump(2) + "\n";
}

}  // namespace prefopt::model
