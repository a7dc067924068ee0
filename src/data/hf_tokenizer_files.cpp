// Reading and writing the tokenizer folder's side files (tokenizer_config.json, chat_template.jinja,
// special_tokens_map.json) the way transformers does. Never touches tokenizer.json's content: it is written back
// byte for byte as it was loaded.
#include "hf_tokenizer_files.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include "../common/files.h"

namespace prefopt::data::hf {

using nlohmann::json;

namespace {

constexpr const char* kSpecialNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                         "pad_token", "cls_token", "mask_token"};

std::optional<std::string> read_optional(const std::string& path) {
  if (!files::exists(path)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), path, ": cannot be opened");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

json parse_object(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    TORCH_CHECK(false, path, ": invalid JSON at byte ", e.byte, ": ", e.what());
  }
  TORCH_CHECK(j.is_object(), path, ": expected a JSON object, got ", j.type_name());
  return j;
}

// A special token is written as a string or as an AddedToken object {"content": ..., ...}.
std::optional<std::string> token_content(const json& j, const std::string& key, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  TORCH_CHECK(false, path, ": $.", key, ": expected a string or {\"content\": ...}, got ", v.dump());
}

NamedTemplate compile(std::string name, std::string source, const std::string& where) {
  NamedTemplate t;
  t.name = std::move(name);
  t.source = std::move(source);
  try {
    t.compiled = std::make_shared<const ChatTemplate>(t.source, where);
  } catch (const ChatTemplateError& e) {
    TORCH_CHECK(false, e.what());
  }
  return t;
}

void write_atomically(const std::string& path, const std::string& text) {
  const std::string error = files::write_text_atomically(path, text);
  TORCH_CHECK(error.empty(), "save_pretrained: ", error);
}

}  // namespace

const NamedTemplate* TokenizerConfig::find_template(const std::string& name) const {
  const std::string wanted = name.empty() ? "default" : name;
  for (const auto& t : templates) {
    if (t.name == wanted) return &t;
  }
  if (name.empty() && templates.size() == 1) return &templates[0];
  return nullptr;
}

TokenizerConfig read_tokenizer_config(const std::string& folder,
                                      const std::function<std::optional<int64_t>(const std::string&)>& token_id) {
  TokenizerConfig config;
  const std::string config_path = files::join(folder, "tokenizer_config.json");
  const std::string map_path = files::join(folder, "special_tokens_map.json");
  const std::string jinja_path = files::join(folder, "chat_template.jinja");
  json cfg = json::object();
  if (auto text = read_optional(config_path)) {
    cfg = parse_object(*text, config_path);
    config.config_json = *text;
  }
  json map = json::object();
  if (auto text = read_optional(map_path)) map = parse_object(*text, map_path);

  for (const char* name : kSpecialNames) {
    // tokenizer_config.json wins over the older special_tokens_map.json, as in transformers.
    std::optional<std::string> content = token_content(cfg, name, config_path);
    std::string from = config_path;
    if (!content) {
      content = token_content(map, name, map_path);
      from = map_path;
    }
    if (!content) continue;
    const std::optional<int64_t> id = token_id(*content);
    TORCH_CHECK(id.has_value(), from, ": $.", name, ": \"", *content, "\" is not a token of ",
                files::join(folder, "tokenizer.json"));
    config.special_tokens.emplace_back(name, *content);
    const std::string n = name;
    if (n == "bos_token") config.bos_id = id;
    if (n == "eos_token") config.eos_id = id;
    if (n == "pad_token") config.pad_id = id;
  }

  // chat_template.jinja (transformers >= 4.43) is the default template; tokenizer_config.json's chat_template
  // names the others (or, in older folders, is the only one).
  if (auto jinja = read_optional(jinja_path)) config.templates.push_back(compile("default", *jinja, jinja_path));
  const auto add = [&](std::string name, std::string source, const std::string& where) {
    for (const auto& t : config.templates) {
      if (t.name == name) return;
    }
    config.templates.push_back(compile(std::move(name), std::move(source), where));
  };
  if (cfg.contains("chat_template") && !cfg["chat_template"].is_null()) {
    const json& t = cfg["chat_template"];
    if (t.is_string()) {
      add("default", t.get<std::string>(), config_path + ": chat_template");
    } else if (t.is_array()) {
      for (std::size_t i = 0; i < t.size(); ++i) {
        const json& item = t[i];
        const std::string where = config_path + ": $.chat_template[" + std::to_string(i) + "]";
        TORCH_CHECK(item.is_object() && item.contains("name") && item["name"].is_string() &&
                        item.contains("template") && item["template"].is_string(),
                    where, ": expected {\"name\": string, \"template\": string}, got ", item.dump());
        add(item["name"].get<std::string>(), item["template"].get<std::string>(), where);
      }
    } else {
      TORCH_CHECK(false, config_path, ": $.chat_template: expected a string or a list of {name, template}, got ",
                  t.type_name());
    }
  }
  return config;
}

void write_tokenizer_files(const std::string& folder, const std::string& tokenizer_json,
                           const TokenizerConfig& config) {
  const std::string error = files::make_directories(folder);
  TORCH_CHECK(error.empty(), "save_pretrained: cannot create ", folder, ": ", error);
  write_atomically(files::join(folder, "tokenizer.json"), tokenizer_json);

  json cfg = json::parse(config.config_json);
  json map = json::object();
  for (const auto& [name, content] : config.special_tokens) {
    cfg[name] = content;
    map[name] = content;
  }
  if (!cfg.contains("tokenizer_class")) cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  cfg.erase("chat_template");
  if (config.templates.size() == 1 && config.templates[0].name == "default") {
    cfg["chat_template"] = config.templates[0].source;
  } else if (!config.templates.empty()) {
    json list = json::array();
    for (const auto& t : config.templates) list.push_back({{"name", t.name}, {"template", t.source}});
    cfg["chat_template"] = list;
  }
  write_atomically(files::join(folder, "tokenizer_config.json"), cfg.dump(2) + "\n");
  write_atomically(files::join(folder, "special_tokens_map.json"), map.dump(2) + "\n");
  // transformers reads chat_template.jinja before tokenizer_config.json: keep a stale one from overriding ours.
  const NamedTemplate* main = config.find_template("");
  const std::string jinja = files::join(folder, "chat_template.jinja");
  if (main != nullptr) {
    write_atomically(jinja, main->source);
  } else if (files::exists(jinja)) {
    std::remove(jinja.c_str());
  }
}

}  // namespace prefopt::data::hf
