// The files of a Hugging Face tokenizer folder besides tokenizer.json: tokenizer_config.json (special tokens,
// chat_template as a string or a list of named templates), chat_template.jinja and special_tokens_map.json, read
// into a TokenizerConfig and written back by save_pretrained. Private to src/data. Never reads tokenizer.json.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <prefopt/data/chat_template.h>

namespace prefopt::data::hf {

struct NamedTemplate {
  std::string name;    // "default" for the single-template forms
  std::string source;
  std::shared_ptr<const ChatTemplate> compiled;
};

struct TokenizerConfig {
  /// tokenizer_config.json as read ("{}" when the folder had none), written back with the chat templates.
  std::string config_json = "{}";
  /// Named special tokens that are set, in the order bos, eos, unk, sep, pad, cls, mask.
  std::vector<std::pair<std::string, std::string>> special_tokens;
  std::optional<int64_t> bos_id, eos_id, pad_id;
  std::vector<NamedTemplate> templates;

  /// The template named `name`; "" picks "default" (or the only one). nullptr when none matches.
  const NamedTemplate* find_template(const std::string& name) const;
};

/// Reads `folder`'s tokenizer_config.json, chat_template.jinja and special_tokens_map.json (each optional).
/// `token_id` maps a token's content to its id in tokenizer.json. A special token that is not a token, a
/// malformed field or a template that does not parse is an error naming the file and the field.
TokenizerConfig read_tokenizer_config(const std::string& folder,
                                      const std::function<std::optional<int64_t>(const std::string&)>& token_id);

/// Writes tokenizer.json (`tokenizer_json` as given), tokenizer_config.json (with the chat template inline),
/// and special_tokens_map.json into `folder`, creating it; each file is written to a temporary name and renamed.
void write_tokenizer_files(const std::string& folder, const std::string& tokenizer_json, const TokenizerConfig& config);

}  // namespace prefopt::data::hf
