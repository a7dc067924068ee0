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
    } else if (type == "linear") {
      TORCH_CHECK(f.has("factor"), f.where("factor"), " is required for rope_type 'linear'");
      scaling.rope_type(RopeType::kLinear).factor(f.number("factor", 1.0));
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
                  "'; supported: 'default', 'linear', 'llama3'");
    }
  }
  config.rope_theta(theta).rope_scaling(scaling);
}

}  // namespace

int64_t LlamaConfig::resolved_head_dim() const {
  if (head_dim_ > 0) return head_dim_;
  return num_attention_heads_ > 0 ? hidden_size_ / num_attention_heads_ : 0;
}

std::string LlamaConfig::architecture_name() const {
  const std::string family = architecture_ == LlamaArchitecture::kQwen2 ? "Qwen2" : "Llama";
  return family + (num_labels_ >= 1 ? "ForSequenceClassification" : "ForCausalLM");
}

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
  std::string from_architectures, from_model_type;
  if (f.has("architectures")) {
    const json& list = root.at("architectures");
    TORCH_CHECK(list.is_array() && list.size() == 1 && list[0].is_string(), f.where("architectures"),
                " must be a list of one architecture name, got ", show(list));
    from_architectures = list[0].get<std::string>();
    TORCH_CHECK(from_architectures == "LlamaForCausalLM" || from_architectures == "Qwen2ForCausalLM" ||
                    from_architectures == "LlamaForSequenceClassification" ||
                    from_architectures == "Qwen2ForSequenceClassification",
                f.where("architectures"), " is '", from_architectures,
                "'; supported: 'LlamaForCausalLM', 'Qwen2ForCausalLM', 'LlamaForSequenceClassification', "
                "'Qwen2ForSequenceClassification'");
  }
  const bool classifier = from_architectures.find("ForSequenceClassification") != std::string::npos;
  if (f.has("model_type")) {
    from_model_type = f.string("model_type", "");
    TORCH_CHECK(from_model_type == "llama" || from_model_type == "qwen2", f.where("model_type"), " is '",
                from_model_type, "'; supported: 'llama', 'qwen2'");
  }
  TORCH_CHECK(!from_architectures.empty() || !from_model_type.empty(), source,
              ": neither architectures nor model_type is given; cannot tell which model this is");
  const bool qwen2 =
      from_architectures.empty() ? from_model_type == "qwen2" : from_architectures.rfind("Qwen2", 0) == 0;
  if (!from_architectures.empty() && !from_model_type.empty()) {
    TORCH_CHECK(qwen2 == (from_model_type == "qwen2"), f.where("model_type"), " is '", from_model_type,
                "' but architectures names '", from_architectures, "'");
  }

  LlamaConfig config;
  config.architecture(qwen2 ? LlamaArchitecture::kQwen2 : LlamaArchitecture::kLlama);
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
  config.vocab_size(f.integer("vocab_size", qwen2 ? 151936 : 32000))
      .hidden_size(f.integer("hidden_size", 4096))
      .intermediate_size(f.integer("intermediate_size", qwen2 ? 22016 : 11008))
      .num_hidden_layers(f.integer("num_hidden_layers", 32))
      .num_attention_heads(f.integer("num_attention_heads", 32));
  config.num_key_value_heads(f.integer("num_key_value_heads", qwen2 ? 32 : config.num_attention_heads()))
      .head_dim(f.integer("head_dim", 0))
      .rms_norm_eps(f.number("rms_norm_eps", 1e-6))
      .max_position_embeddings(f.integer("max_position_embeddings", qwen2 ? 32768 : 2048))
      .tie_word_embeddings(f.boolean("tie_word_embeddings", false))
      .initializer_range(f.number("initializer_range", 0.02))
      .pad_token_id(f.optional_integer("pad_token_id"))
      .bos_token_id(root.contains("bos_token_id") ? f.optional_integer("bos_token_id")
                                                  : (qwen2 ? std::nullopt : std::optional<int64_t>(1)));
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
  } else if (!qwen2 && !root.contains("eos_token_id")) {
    config.eos_token_ids({2});
  }
  config.torch_dtype(f.has("dtype") ? f.string("dtype", "") : f.string("torch_dtype", ""));

  const std::string act = f.string("hidden_act", "silu");
  TORCH_CHECK(act == "silu" || act == "swish", f.where("hidden_act"), " is '", act,
              "'; only 'silu' (SwiGLU) is supported");
  TORCH_CHECK(f.number("attention_dropout", 0.0) == 0.0, f.where("attention_dropout"), " is ",
              show(root.at("attention_dropout")), "; only 0 is supported (no dropout is implemented)");
  if (!qwen2) {
    TORCH_CHECK(!f.boolean("attention_bias", false), f.where("attention_bias"),
                " is true; LlamaForCausalLM is supported without attention biases only");
    TORCH_CHECK(!f.boolean("mlp_bias", false), f.where("mlp_bias"),
                " is true; LlamaForCausalLM is supported without MLP biases only");
  } else {
    const int64_t layers = config.num_hidden_layers();
    if (f.has("layer_types")) {
      const json& types = root.at("layer_types");
      TORCH_CHECK(types.is_array() && static_cast<int64_t>(types.size()) == layers, f.where("layer_types"),
                  " must list one type per layer (", layers, "), got ", show(types));
      for (size_t i = 0; i < types.size(); ++i) {
        TORCH_CHECK(types[i].is_string() && types[i].get<std::string>() == "full_attention", f.where("layer_types"),
                    "[", i, "] is ", show(types[i]), "; only 'full_attention' is supported (no sliding window)");
      }
    }
    if (f.boolean("use_sliding_window", false)) {
      const int64_t first_sliding = f.integer("max_window_layers", 28);
      TORCH_CHECK(first_sliding >= layers, f.where("use_sliding_window"), " is true and max_window_layers (",
                  first_sliding, ") < num_hidden_layers (", layers,
                  "), so layers would use sliding-window attention, which is not supported");
    }
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
  const bool qwen2 = architecture_ == LlamaArchitecture::kQwen2;
  using ojson = nlohmann::ordered_json;
  ojson j;
  j["architectures"] = ojson::array({architecture_name()});
  j["model_type"] = qwen2 ? "qwen2" : "llama";
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
  j["max_position_embeddings"] = max_position_embeddings_;
  j["tie_word_embeddings"] = tie_word_embeddings_;
  j["initializer_range"] = initializer_range_;
  j["attention_dropout"] = 0.0;
  if (qwen2) {
    j["use_sliding_window"] = false;
    j["layer_types"] = std::vector<std::string>(static_cast<size_t>(num_hidden_layers_), "full_attention");
  } else {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
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
