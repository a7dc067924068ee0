// The public face of the chat-template engine (include/prefopt/data/chat_template.h): prepares the inputs as
// transformers' apply_chat_template and render_jinja_template do (drop None-valued keys, alias reasoning
// fields, validate tools and documents, tag the message to continue), renders, applies
// continue_final_message's cut, and turns every internal Fault into a ChatTemplateError naming the template
// and line. Never keeps state between renders.
#include <prefopt/data/chat_template.h>

#include "interp.h"
#include "json.h"
#include "text.h"

namespace prefopt::data {

using jinja::DictObj;
using jinja::Fault;
using jinja::Kind;
using jinja::Value;

struct ChatTemplate::Impl {
  std::string name;
  std::string source;
  std::shared_ptr<const jinja::Program> program;
};

namespace {

const char kContinueTag[] = "CONTINUE_FINAL_MESSAGE_TAG ";

[[noreturn]] void raise(const std::string& name, const Fault& f) {
  throw ChatTemplateError(f.line ? name + ":" + std::to_string(f.line) + ": " + f.message : name + ": " + f.message);
}

// apply_chat_template's _normalize_chat_messages: each message a dict, keys with a None value dropped.
std::vector<Value> normalize_messages(const Value& messages) {
  if (messages.kind != Kind::List)
    jinja::fail("messages_json: expected a JSON array of message objects, got " + jinja::type_name(messages));
  std::vector<Value> out;
  for (const Value& m : messages.items()) {
    if (m.kind != Kind::Dict)
      jinja::fail("Chat messages should be dicts, dataclasses or pydantic models, but got " + jinja::py_repr(m) + ".");
    DictObj d;
    for (const auto& [k, v] : m.dict().entries)
      if (!v.is_none()) d.entries.emplace_back(k, v);
    out.push_back(jinja::make_dict(std::move(d)));
  }
  return out;
}

// transformers' _alias_reasoning_fields: {"thinking": r, **message, "reasoning_content": r}.
Value alias_reasoning(const Value& message) {
  const DictObj& m = message.dict();
  const Value* reasoning = nullptr;
  for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
    const Value* v = m.find(std::string_view(key));
    if (v && !v->is_none()) {
      reasoning = v;
      break;
    }
  }
  if (!reasoning) return message;
  DictObj d;
  d.set(Value::str("thinking"), *reasoning);
  for (const auto& [k, v] : m.entries) d.set(k, v);
  d.set(Value::str("reasoning_content"), *reasoning);
  return jinja::make_dict(std::move(d));
}

// Tags the final message's content (or its last text block) and returns the original text to look for.
std::string tag_final_message(std::vector<Value>& chat, const std::string& source) {
  if (chat.empty()) jinja::fail("continue_final_message is set but the conversation is empty!");
  const Value* content = chat.back().dict().find(std::string_view("content"));
  if (!content) jinja::fail("continue_final_message is set but the final message has no \"content\" to continue!");
  if (source.find("content") == std::string::npos)
    jinja::fail("continue_final_message is set to \"content\" but this is not an accepted field in the chat_template");
  DictObj last = chat.back().dict();
  std::string final_text;
  if (content->is_sequence()) {
    std::vector<Value> blocks = content->items();
    bool found = false;
    for (auto it = blocks.rbegin(); it != blocks.rend() && !found; ++it) {
      if (it->kind != Kind::Dict || !it->dict().find(std::string_view("text"))) continue;
      DictObj block = it->dict();
      const Value text = *block.find(std::string_view("text"));
      if (!text.is_str()) jinja::fail("continue_final_message: the final text block's \"text\" is not a string");
      final_text = text.s();
      block.set(Value::str("text"), Value::str(text.s() + kContinueTag));
      *it = jinja::make_dict(std::move(block));
      found = true;
    }
    if (!found)
      jinja::fail("continue_final_message is set but we could not find any text to continue in the final message!");
    last.set(Value::str("content"),
             content->kind == Kind::Tuple ? Value::tuple(std::move(blocks)) : Value::list(std::move(blocks)));
  } else {
    if (!content->is_str())
      jinja::fail("continue_final_message: unsupported operand type(s) for +: '" + jinja::type_name(*content) +
                  "' and 'str'");
    final_text = content->s();
    last.set(Value::str("content"), Value::str(content->s() + kContinueTag));
  }
  chat.back() = jinja::make_dict(std::move(last));
  return final_text;
}

// render_jinja_template's cut after the tagged message.
void cut_at_tag(RenderedChat& out, const std::string& final_text) {
  const std::string stripped = jinja::py_strip(final_text, std::nullopt, true, true);
  const std::string tag = kContinueTag;
  const std::string bare = tag.substr(0, tag.size() - 1);
  if (out.text.find(stripped) == std::string::npos || out.text.find(bare) == std::string::npos)
    jinja::fail(
        "continue_final_message is set but the final message does not appear in the chat after applying the "
        "chat template! This can happen if the chat template deletes portions of the final message. Please "
        "verify the chat template and final message in your chat to ensure they are compatible.Final "
        "message to continue: " +
        stripped + "\nRendered chat:\n" + out.text);
  const std::size_t at = out.text.rfind(bare);
  if (out.text.compare(at, tag.size(), tag) == 0)
    out.text.resize(at);
  else
    out.text = jinja::py_strip(out.text.substr(0, at), std::nullopt, false, true);
  std::vector<std::pair<std::size_t, std::size_t>> kept;
  for (auto [b, e] : out.generation_spans)
    if (b < out.text.size()) kept.emplace_back(b, std::min(e, out.text.size()));
  out.generation_spans = std::move(kept);
}

Value list_of_dicts(const Value& v, const char* what, const char* message) {
  if (v.kind != Kind::List && v.kind != Kind::Tuple)
    jinja::fail(std::string(what) + ": expected a JSON array, got " + jinja::type_name(v));
  for (const Value& item : v.items())
    if (item.kind != Kind::Dict) jinja::fail(message);
  return v;
}

RenderedChat render_chat(const ChatTemplate::Impl& impl, const Value& messages_value, const ChatTemplateInputs& in) {
  if (in.continue_final_message && in.add_generation_prompt)
    jinja::fail(
        "continue_final_message and add_generation_prompt are not compatible. Use continue_final_message when "
        "you want the model to continue the final message, and add_generation_prompt when you want to add a "
        "header that will prompt it to start a new assistant message instead.");
  std::vector<Value> chat = normalize_messages(messages_value);
  if (chat.empty()) jinja::fail("Cannot apply chat template to an empty conversation. Provide at least one message.");
  for (Value& m : chat) m = alias_reasoning(m);
  std::string final_text;
  if (in.continue_final_message) final_text = tag_final_message(chat, impl.source);

  const char* tools_message =
      "Tools should either be a JSON schema, or a callable function with type hints and a "
      "docstring suitable for auto-conversion to a schema.";
  Value tools = Value::none();
  if (!in.tools_json.empty())
    tools = list_of_dicts(jinja::parse_json(in.tools_json, "tools_json"), "tools_json", tools_message);
  Value documents = Value::none();

  auto globals = std::make_shared<jinja::Scope>();
  for (auto& [k, v] : jinja::make_globals()) globals->set(k, std::move(v));
  auto root = std::make_shared<jinja::Scope>();
  root->parent = globals;
  for (const auto& [k, v] : in.special_tokens) root->set(k, Value::str(v));
  if (!in.variables_json.empty()) {
    const Value vars = jinja::parse_json(in.variables_json, "variables_json");
    if (vars.kind != Kind::Dict) jinja::fail("variables_json: expected a JSON object, got " + jinja::type_name(vars));
    for (const auto& [k, v] : vars.dict().entries) {
      const std::string& key = k.s();
      if (key == "messages" || key == "add_generation_prompt" || key == "continue_final_message" ||
          (key == "tools" && !in.tools_json.empty()))
        jinja::fail("variables_json: \"" + key + "\" has its own ChatTemplateInputs field");
      if (key == "tools")
        tools = v.is_none() ? v : list_of_dicts(v, "variables_json: tools", tools_message);
      else if (key == "documents")
        documents = v.is_none() ? v
                                : list_of_dicts(v, "variables_json: documents",
                                                "Documents should be a list of dicts with 'title' and 'text' keys!");
      else
        root->set(key, v);
    }
  }
  root->set("messages", Value::list(std::move(chat)));
  root->set("tools", tools);
  root->set("documents", documents);
  root->set("add_generation_prompt", Value::boolean(in.add_generation_prompt));

  jinja::Renderer renderer(in.now ? *in.now : std::time(nullptr));
  RenderedChat out;
  out.text = renderer.render(*impl.program, root);
  out.generation_spans = renderer.spans();
  if (in.continue_final_message) cut_at_tag(out, final_text);
  return out;
}

}  // namespace

ChatTemplate::ChatTemplate(std::string_view source, std::string name) {
  auto impl = std::make_shared<Impl>();
  impl->name = std::move(name);
  impl->source = std::string(source);
  try {
    impl->program = jinja::parse_template(source);
  } catch (const Fault& f) {
    raise(impl->name, f);
  }
  impl_ = std::move(impl);
}

const std::string& ChatTemplate::name() const { return impl_->name; }

RenderedChat ChatTemplate::render(const ChatTemplateInputs& inputs) const {
  try {
    return render_chat(*impl_, jinja::parse_json(inputs.messages_json, "messages_json"), inputs);
  } catch (const Fault& f) {
    raise(impl_->name, f);
  } catch (const std::exception& e) {  // e.g. out of memory: still a ChatTemplateError naming the template
    throw ChatTemplateError(impl_->name + ": " + e.what());
  }
}

std::string ChatTemplate::render(const std::vector<Message>& messages, bool add_generation_prompt,
                                 bool continue_final_message,
                                 const std::vector<std::pair<std::string, std::string>>& special_tokens) const {
  std::vector<Value> list;
  for (const Message& m : messages) {
    DictObj d;
    d.set(Value::str("role"), Value::str(m.role));
    d.set(Value::str("content"), Value::str(m.content));
    list.push_back(jinja::make_dict(std::move(d)));
  }
  ChatTemplateInputs inputs;
  inputs.add_generation_prompt = add_generation_prompt;
  inputs.continue_final_message = continue_final_message;
  inputs.special_tokens = special_tokens;
  try {
    return render_chat(*impl_, Value::list(std::move(list)), inputs).text;
  } catch (const Fault& f) {
    raise(impl_->name, f);
  } catch (const std::exception& e) {
    throw ChatTemplateError(impl_->name + ": " + e.what());
  }
}

std::vector<std::pair<std::string, std::string>> parse_chat_template_field(std::string_view json_text) {
  const char* shape = "chat_template: expected a string or a list of {\"name\": ..., \"template\": ...} objects";
  try {
    const Value v = jinja::parse_json(json_text, "chat_template");
    if (v.is_str()) return {{"default", v.s()}};
    if (v.kind != Kind::List) throw ChatTemplateError(shape);
    std::vector<std::pair<std::string, std::string>> out;
    for (const Value& item : v.items()) {
      const Value* name = item.kind == Kind::Dict ? item.dict().find(std::string_view("name")) : nullptr;
      const Value* tpl = item.kind == Kind::Dict ? item.dict().find(std::string_view("template")) : nullptr;
      if (!name || !tpl || !name->is_str() || !tpl->is_str()) throw ChatTemplateError(shape);
      bool replaced = false;
      for (auto& [n, t] : out)
        if (n == name->s()) t = tpl->s(), replaced = true;
      if (!replaced) out.emplace_back(name->s(), tpl->s());
    }
    return out;
  } catch (const Fault& f) {
    throw ChatTemplateError(f.message);
  }
}

}  // namespace prefopt::data
