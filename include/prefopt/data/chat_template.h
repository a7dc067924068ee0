// Hugging Face chat templates rendered natively: the Jinja source in tokenizer_config.json's "chat_template"
// (or chat_template.jinja) is parsed once and rendered to the bytes transformers' apply_chat_template(...,
// tokenize=False) produces: jinja2 3.1 as transformers configures it (sandboxed, trim_blocks, lstrip_blocks,
// loop controls, the {% generation %} tag, its tojson / raise_exception / strftime_now / namespace), with
// apply_chat_template's input handling (None-valued keys dropped, reasoning fields aliased,
// continue_final_message). Never runs Python, never reads files, never tokenizes.
#pragma once

#include <cstddef>
#include <ctime>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "records.h"

namespace prefopt::data {

/// Any failure to parse or render a template. The message names the template and, for errors inside it, the
/// 1-based template line:
///     chat_template:3: unsupported filter "wordwrap"
///     chat_template:7: expected token 'end of print statement', got 'b'
///     chat_template:12: raise_exception: Conversation roles must alternate user/assistant/user/assistant/...
///     chat_template:4: 'dict object' has no attribute 'content'
///     chat_template: messages_json: invalid JSON at byte 17: expected ',' or '}'
class ChatTemplateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What a template is rendered over, all JSON given as text (a JSON library is not part of this interface).
struct ChatTemplateInputs {
  /// A JSON array of message objects, as transformers takes them: {"role": ..., "content": ...} plus any other
  /// keys (tool_calls, reasoning_content, name, ...); content may be a string or a list of content blocks.
  /// Keys whose value is null are dropped first, as apply_chat_template does.
  std::string messages_json;
  /// "" for no tools (the template sees `tools` as None), or a JSON array of tool schemas (objects).
  std::string tools_json;
  bool add_generation_prompt = false;
  /// Leave the final message open for the model to continue (transformers' semantics: the rendering is cut
  /// right after that message's content; incompatible with add_generation_prompt).
  bool continue_final_message = false;
  /// Variables such as {"bos_token", "<s>"}, {"eos_token", "</s>"} (HFTokenizer::special_tokens()).
  std::vector<std::pair<std::string, std::string>> special_tokens;
  /// "" or a JSON object of further variables (documents, enable_thinking, date_string, ...); these override
  /// special_tokens of the same name, as apply_chat_template's kwargs do. "documents" must be a list of
  /// objects; "messages", "tools" (when tools_json is set), "add_generation_prompt" and
  /// "continue_final_message" are errors here (they have their own fields).
  std::string variables_json;
  /// The clock strftime_now reads (local time, whole seconds: %f gives 000000); nullopt: the current time.
  std::optional<std::time_t> now;
};

struct RenderedChat {
  std::string text;
  /// Byte ranges [begin, end) of `text` rendered inside {% generation %} blocks, in order (what transformers
  /// turns into return_assistant_tokens_mask; transformers reports the same ranges in characters). As in
  /// transformers, a block inside a macro or a set block is placed at the end of the text rendered so far.
  std::vector<std::pair<std::size_t, std::size_t>> generation_spans;
};

/// A parsed chat template. Immutable; copies share the parse; render is const and safe from several threads at
/// once.
///
/// Supported: all of jinja2's statements except include / import / extends / block / autoescape and recursive
/// loops; expressions with Python's semantics (str, int, float, bool, None, list, tuple, dict); jinja2's
/// filters and tests except filesizeformat, pprint, random, striptags, urlencode, urlize, wordwrap and xmlattr;
/// the str / dict / list methods templates call (strip, split, startswith, replace, format, get, items, ...).
/// A construct outside that set is a ChatTemplateError naming it and its line, never a silent difference.
///
/// Example:
/// ```
/// prefopt::data::ChatTemplate tpl(
///     "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>\n{% endfor %}"
///     "{% if add_generation_prompt %}<|assistant|>{% endif %}");
/// tpl.render({{"user", "Hi"}}, /*add_generation_prompt=*/true);   // "<|user|>Hi<|end|>\n<|assistant|>"
///
/// prefopt::data::ChatTemplateInputs in;
/// in.messages_json = R"([{"role": "user", "content": "Hi"}])";
/// in.special_tokens = {{"bos_token", "<s>"}};
/// prefopt::data::RenderedChat out = tpl.render(in);               // out.text as above, without the prompt
/// ```
class ChatTemplate {
 public:
  /// Parses `source`; `name` prefixes every error message. A syntax error, an unknown tag / filter / test, or
  /// an unsupported statement is a ChatTemplateError "NAME:LINE: ...".
  explicit ChatTemplate(std::string_view source, std::string name = "chat_template");

  RenderedChat render(const ChatTemplateInputs& inputs) const;
  /// The conversation's text, messages as {"role", "content"} objects; `special_tokens` as in ChatTemplateInputs.
  std::string render(const std::vector<Message>& messages, bool add_generation_prompt = false,
                     bool continue_final_message = false,
                     const std::vector<std::pair<std::string, std::string>>& special_tokens = {}) const;

  const std::string& name() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

/// tokenizer_config.json's "chat_template" value, given as JSON text: a string (returned as {"default",
/// source}) or transformers' list form [{"name": ..., "template": ...}, ...] (name -> source, in order; a
/// repeated name keeps its first position and its last template). Anything else is a ChatTemplateError.
std::vector<std::pair<std::string, std::string>> parse_chat_template_field(std::string_view json_text);

}  // namespace prefopt::data
