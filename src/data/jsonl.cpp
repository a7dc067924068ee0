// The JSONL readers and the record helpers of records.h (the chat template, Source's text). Each line is read,
// parsed with nlohmann_json, validated field by field and turned into a record; any problem becomes one message
// "file:line: field "name": what" that is raised or, under OnError::Skip, counted. Never keeps more than one
// line's text and JSON at a time, never touches the bytes of a string, and never lets a JSON exception or a
// malformed value escape as anything but that message.
#include <prefopt/data/jsonl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

namespace prefopt::data {

// ---- records.h -------------------------------------------------------------------------------------------------

std::string to_string(const Source& source) {
  if (source.file.empty()) return "record";
  return source.file + ":" + std::to_string(source.line);
}

Segment Segment::from_text(std::string text) {
  Segment s;
  s.kind = Kind::Text;
  s.text = std::move(text);
  return s;
}

Segment Segment::from_messages(std::vector<Message> messages) {
  Segment s;
  s.kind = Kind::Messages;
  s.messages = std::move(messages);
  return s;
}

Segment Segment::from_ids(std::vector<int64_t> ids) {
  Segment s;
  s.kind = Kind::Ids;
  s.ids = std::move(ids);
  return s;
}

namespace {

void append_message(std::string& out, const std::string& role, const std::string& content) {
  out += "<|";
  out += role;
  out += "|>\n";
  out += content;
  out += '\n';
}

}  // namespace

std::string render_conversation(const std::vector<Message>& messages) {
  std::string out;
  for (const auto& m : messages) append_message(out, m.role, m.content);
  return out;
}

std::string render_prompt(const std::vector<Message>& prompt) {
  std::string out = render_conversation(prompt);
  out += "<|assistant|>\n";
  return out;
}

std::string render_completion(const std::vector<Message>& completion) {
  TORCH_CHECK(!completion.empty(), "render_completion: a completion needs at least one message, got none");
  TORCH_CHECK(completion[0].role == "assistant",
              "render_completion: a completion must start with an \"assistant\" message, got \"", completion[0].role,
              "\"");
  std::string out = completion[0].content;
  out += '\n';
  for (size_t i = 1; i < completion.size(); ++i) append_message(out, completion[i].role, completion[i].content);
  return out;
}

// ---- parsing ---------------------------------------------------------------------------------------------------

namespace {

using json = nlohmann::json;

// A malformed record: the message without its "file:line: " prefix, which the reader adds.
class RecordError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  throw RecordError("field \"" + field + "\": " + what);
}

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "list";
    case json::value_t::object:
      return "object";
    case json::value_t::binary:
      return "binary";
    case json::value_t::discarded:
      return "nothing";
    default:
      return "number";
  }
}

const json* find(const json& object, const std::string& key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

bool valid_role(const std::string& role) {
  if (role.empty()) return false;
  for (const char c : role) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

enum class Part { Prompt, Completion };

std::vector<Message> parse_messages(const json& list, const std::string& field, Part part) {
  std::vector<Message> messages;
  messages.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (!m.is_object()) fail(at, "expected a message {\"role\": ..., \"content\": ...}, got " + type_name(m));
    const json* role = find(m, "role");
    if (role == nullptr) fail(at + ".role", "missing");
    if (!role->is_string()) fail(at + ".role", "expected a string, got " + type_name(*role));
    const json* content = find(m, "content");
    if (content == nullptr) fail(at + ".content", "missing");
    if (!content->is_string()) fail(at + ".content", "expected a string, got " + type_name(*content));
    Message message{role->get<std::string>(), content->get<std::string>()};
    if (!valid_role(message.role)) {
      fail(at + ".role", "expected a non-empty run of ASCII letters, digits, '_' or '-', got \"" + message.role + "\"");
    }
    messages.push_back(std::move(message));
  }
  if (part == Part::Completion) {
    if (messages.empty()) fail(field, "empty completion (a list with no message)");
    if (messages[0].role != "assistant") {
      fail(field + "[0].role",
           "a completion must start with an \"assistant\" message, got \"" + messages[0].role + "\"");
    }
  }
  return messages;
}

// A text value: a string or a list of messages.
Segment parse_text(const json& value, const std::string& field, Part part) {
  if (value.is_string()) {
    std::string text = value.get<std::string>();
    if (part == Part::Completion && text.empty()) fail(field, "empty completion");
    return Segment::from_text(std::move(text));
  }
  if (value.is_array()) return Segment::from_messages(parse_messages(value, field, part));
  fail(field, "expected a string or a list of messages, got " + type_name(value));
}

// An id value: a list of non-negative integers.
Segment parse_ids(const json& value, const std::string& field, Part part) {
  if (!value.is_array()) fail(field, "expected a list of token ids, got " + type_name(value));
  std::vector<int64_t> ids;
  ids.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const json& id = value[i];
    const std::string index = " at index " + std::to_string(i);
    if (id.is_number_unsigned()) {
      const auto u = id.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(field, "token id " + std::to_string(u) + index + " does not fit in int64");
      }
      ids.push_back(static_cast<int64_t>(u));
    } else if (id.is_number_integer()) {
      const auto v = id.get<int64_t>();
      if (v < 0) fail(field, "token id " + std::to_string(v) + index + " is negative");
      ids.push_back(v);
    } else {
      fail(field,
           "expected integer token ids, got " + (id.is_number() ? "the number " + id.dump() : type_name(id)) + index);
    }
  }
  if (ids.empty()) {
    if (part == Part::Completion) fail(field, "empty completion");
    fail(field, "empty prompt: nothing would predict the first completion token");
  }
  return Segment::from_ids(std::move(ids));
}

struct Located {
  const json* value = nullptr;
  std::string field;
  bool ids = false;
};

// Finds the value of base as text, base_ids or base_input_ids: exactly one of them.
Located locate(const json& object, const std::string& base,
               const std::string& text_form = "a string or a list of messages",
               const std::string& ids_form = "a list of token ids") {
  const std::string ids_name = base + "_ids";
  const std::string input_ids_name = base + "_input_ids";
  const json* text = find(object, base);
  const json* ids = find(object, ids_name);
  const json* input_ids = find(object, input_ids_name);
  if (ids != nullptr && input_ids != nullptr) {
    fail(ids_name, "both \"" + ids_name + "\" and \"" + input_ids_name + "\" are given; give one");
  }
  const std::string& id_field = ids != nullptr ? ids_name : input_ids_name;
  if (input_ids != nullptr) ids = input_ids;
  if (text != nullptr && ids != nullptr) {
    fail(base, "both \"" + base + "\" and \"" + id_field + "\" are given; give one");
  }
  if (text == nullptr && ids == nullptr) {
    fail(base, "missing (give \"" + base + "\" as " + text_form + ", or \"" + ids_name + "\" as " + ids_form + ")");
  }
  if (ids != nullptr) return {ids, id_field, true};
  return {text, base, false};
}

Segment read_segment(const json& object, const std::string& base, Part part) {
  const Located at = locate(object, base);
  return at.ids ? parse_ids(*at.value, at.field, part) : parse_text(*at.value, at.field, part);
}

// The text segments of a record (prompts and completions not given as ids) must be all plain or all
// conversational. `segments` are in field order; the first text one sets the form.
void check_same_form(const std::vector<std::pair<const Segment*, std::string>>& segments) {
  const std::pair<const Segment*, std::string>* first = nullptr;
  for (const auto& entry : segments) {
    if (entry.first->kind == Segment::Kind::Ids) continue;
    if (first == nullptr) {
      first = &entry;
      continue;
    }
    if (entry.first->kind == first->first->kind) continue;
    if (first->first->kind == Segment::Kind::Messages) {
      fail(entry.second, "expected a list of messages, as \"" + first->second + "\" is conversational; got a string");
    }
    fail(entry.second, "expected a string, as \"" + first->second + "\" is plain text; got a list of messages");
  }
}

void require_object(const json& j) {
  if (!j.is_object()) throw RecordError("expected a JSON object per line, got " + type_name(j));
}

// A finite number in `field`, or nothing when the field is absent or null.
std::optional<double> optional_number(const json& j, const std::string& field) {
  const json* v = find(j, field);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_number()) fail(field, "expected a number, got " + type_name(*v));
  const double x = v->get<double>();
  if (!std::isfinite(x)) fail(field, "expected a finite number, got one that overflows a double");
  return x;
}

// Byte offsets of the code points of `s` (and s.size() last), so prompts are cut between characters.
std::vector<size_t> char_starts(const std::string& s) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
  }
  starts.push_back(s.size());
  return starts;
}

// TRL's maybe_extract_prompt for a record without "prompt": the longest common prefix of "chosen" and "rejected"
// (characters of strings, messages of conversations) becomes the prompt, with TRL's two quirks kept so the ids
// match: a space just before the first difference stays with the completions, and when one is a prefix of the
// other the prompt stops one element short of the shorter.
json extract_prompt(json& j) {
  const json& chosen = j.at("chosen");
  const json& rejected = j.at("rejected");
  if (chosen.is_string() && rejected.is_string()) {
    const std::string c = chosen.get<std::string>(), r = rejected.get<std::string>();
    const std::vector<size_t> cs = char_starts(c), rs = char_starts(r);
    const size_t n = std::min(cs.size(), rs.size()) - 1;  // characters in the shorter
    size_t idx = 0;
    for (size_t k = 0; k < n; ++k) {
      idx = k;
      if (c.compare(cs[k], cs[k + 1] - cs[k], r, rs[k], rs[k + 1] - rs[k]) != 0) {
        const size_t before = k == 0 ? cs.size() - 2 : k - 1;  // Python's c[-1] when k == 0
        if (c.compare(cs[before], cs[before + 1] - cs[before], " ") == 0) idx = k == 0 ? 0 : k - 1;
        break;
      }
    }
    // idx indexes characters of both strings up to the first difference, where their bytes agree.
    j["chosen"] = c.substr(cs[idx]);
    j["rejected"] = r.substr(rs[idx]);
    return c.substr(0, cs[idx]);
  }
  if (chosen.is_array() && rejected.is_array()) {
    const size_t n = std::min(chosen.size(), rejected.size());
    size_t idx = 0;
    for (size_t k = 0; k < n; ++k) {
      idx = k;
      if (chosen[k] != rejected[k]) break;
    }
    json prompt = json::array();
    for (size_t k = 0; k < idx; ++k) prompt.push_back(chosen[k]);
    j["chosen"] = json(chosen.begin() + static_cast<std::ptrdiff_t>(idx), chosen.end());
    j["rejected"] = json(rejected.begin() + static_cast<std::ptrdiff_t>(idx), rejected.end());
    return prompt;
  }
  fail("prompt",
       "missing, and it can be extracted from \"chosen\" and \"rejected\" only when both are strings or both are "
       "lists of messages");
}

PairRecord parse_pair(const json& line) {
  require_object(line);
  PairRecord r;
  json extracted;
  const bool implicit = find(line, "prompt") == nullptr && find(line, "prompt_ids") == nullptr &&
                        find(line, "prompt_input_ids") == nullptr && find(line, "chosen") != nullptr &&
                        find(line, "rejected") != nullptr;
  if (implicit) {
    extracted = line;
    extracted["prompt"] = extract_prompt(extracted);
  }
  const json& j = implicit ? extracted : line;
  r.prompt = read_segment(j, "prompt", Part::Prompt);
  r.chosen = read_segment(j, "chosen", Part::Completion);
  r.rejected = read_segment(j, "rejected", Part::Completion);
  check_same_form({{&r.prompt, "prompt"}, {&r.chosen, "chosen"}, {&r.rejected, "rejected"}});
  r.margin = optional_number(j, "margin");
  r.magnitude = optional_number(j, "magnitude");
  if (r.magnitude && *r.magnitude < 0) fail("magnitude", "expected a number >= 0, got " + j.at("magnitude").dump());
  return r;
}

JointPairRecord parse_joint_pair(const json& j) {
  require_object(j);
  JointPairRecord r;
  r.chosen_prompt = read_segment(j, "chosen_prompt", Part::Prompt);
  r.chosen = read_segment(j, "chosen", Part::Completion);
  r.rejected_prompt = read_segment(j, "rejected_prompt", Part::Prompt);
  r.rejected = read_segment(j, "rejected", Part::Completion);
  check_same_form({{&r.chosen_prompt, "chosen_prompt"},
                   {&r.chosen, "chosen"},
                   {&r.rejected_prompt, "rejected_prompt"},
                   {&r.rejected, "rejected"}});
  return r;
}

ListRecord parse_list(const json& j) {
  require_object(j);
  ListRecord r;
  r.prompt = read_segment(j, "prompt", Part::Prompt);
  const Located at = locate(j, "responses", "a list of strings or conversations", "a list of token-id lists");
  if (!at.value->is_array()) {
    fail(at.field, std::string("expected a list of ") + (at.ids ? "token-id lists" : "responses") + ", got " +
                       type_name(*at.value));
  }
  if (at.value->empty()) fail(at.field, "empty list: a ranked list needs at least one response");
  for (size_t k = 0; k < at.value->size(); ++k) {
    const std::string field = at.field + "[" + std::to_string(k) + "]";
    const json& v = (*at.value)[k];
    r.responses.push_back(at.ids ? parse_ids(v, field, Part::Completion) : parse_text(v, field, Part::Completion));
  }
  std::vector<std::pair<const Segment*, std::string>> forms = {{&r.prompt, "prompt"}};
  for (size_t k = 0; k < r.responses.size(); ++k) {
    forms.emplace_back(&r.responses[k], at.field + "[" + std::to_string(k) + "]");
  }
  check_same_form(forms);

  const json* scores = find(j, "scores");
  const json* ranks = find(j, "ranks");
  if (scores != nullptr && ranks != nullptr) fail("scores", "both \"scores\" and \"ranks\" are given; give one");
  if (scores == nullptr && ranks == nullptr) {
    fail("scores", "missing (give \"scores\", higher is better, or \"ranks\", lower is better)");
  }
  const std::string name = scores != nullptr ? "scores" : "ranks";
  const json& labels = scores != nullptr ? *scores : *ranks;
  r.label_kind = scores != nullptr ? ListLabelKind::Scores : ListLabelKind::Ranks;
  if (!labels.is_array()) fail(name, "expected a list of numbers, got " + type_name(labels));
  if (labels.size() != r.responses.size()) {
    fail(name, "has " + std::to_string(labels.size()) + " entries but \"" + at.field + "\" has " +
                   std::to_string(r.responses.size()));
  }
  for (size_t k = 0; k < labels.size(); ++k) {
    const json& v = labels[k];
    const std::string field = name + "[" + std::to_string(k) + "]";
    if (!v.is_number()) fail(field, "expected a number, got " + type_name(v));
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(field, "expected a finite number, got one that overflows a double");
    r.labels.push_back(x);
  }
  return r;
}

CompletionRecord parse_completion(const json& j) {
  require_object(j);
  CompletionRecord r;
  const bool has_text = find(j, "text") != nullptr, has_messages = find(j, "messages") != nullptr;
  if (has_text || has_messages) {
    for (const char* other : {"prompt", "prompt_ids", "prompt_input_ids", "completion", "completion_ids"}) {
      if (find(j, other) != nullptr) {
        fail(other, std::string("a line holds \"prompt\" and \"completion\", or \"text\", or \"messages\"; got \"") +
                        other + "\" with \"" + (has_text ? "text" : "messages") + "\"");
      }
    }
    if (has_text && has_messages) fail("messages", "a line holds \"text\" or \"messages\", not both");
    r.language_modeling = true;
    if (has_text) {
      const json& text = j.at("text");
      if (!text.is_string()) fail("text", "expected a string, got " + type_name(text));
      if (text.get<std::string>().empty()) fail("text", "empty text");
      r.completion = Segment::from_text(text.get<std::string>());
    } else {
      const json& messages = j.at("messages");
      if (!messages.is_array()) fail("messages", "expected a list of messages, got " + type_name(messages));
      if (messages.empty()) fail("messages", "empty conversation (a list with no message)");
      r.completion = Segment::from_messages(parse_messages(messages, "messages", Part::Prompt));
    }
    return r;
  }
  r.prompt = read_segment(j, "prompt", Part::Prompt);
  r.completion = read_segment(j, "completion", Part::Completion);
  check_same_form({{&r.prompt, "prompt"}, {&r.completion, "completion"}});
  return r;
}

UnpairedRecord parse_unpaired(const json& j) {
  require_object(j);
  UnpairedRecord r;
  r.prompt = read_segment(j, "prompt", Part::Prompt);
  r.completion = read_segment(j, "completion", Part::Completion);
  check_same_form({{&r.prompt, "prompt"}, {&r.completion, "completion"}});
  const json* label = find(j, "label");
  if (label == nullptr) fail("label", "missing (true for a desirable completion, false for an undesirable one)");
  if (!label->is_boolean()) fail("label", "expected a boolean, got " + type_name(*label));
  r.label = label->get<bool>();
  return r;
}

// nlohmann's parse_error text is "[json.exception.parse_error.101] parse error at line 1, column 9: detail";
// the reader reports the byte offset itself, so only the detail is kept.
std::string parse_error_detail(const json::parse_error& e) {
  const std::string what = e.what();
  const auto column = what.find("column ");
  const auto colon = what.find(": ", column == std::string::npos ? 0 : column);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

// "[json.exception.out_of_range.406] number overflow parsing '1e400'" -> "number overflow parsing '1e400'".
std::string without_exception_id(const std::string& what) {
  const auto end = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && end != std::string::npos ? what.substr(end + 2) : what;
}

bool blank(const std::string& line) {
  for (const char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

template <typename Record, typename Parse>
ReadStats read_jsonl(const std::string& path, Parse parse, const std::function<void(Record&&)>& sink,
                     const ReadOptions& options) {
  TORCH_CHECK(options.max_skip_messages() >= 0, "ReadOptions.max_skip_messages must be >= 0, got ",
              options.max_skip_messages());
  TORCH_CHECK(sink, "read: the sink must be a callable, got an empty std::function");
  // stat, not std::filesystem: libtorch.so exports its own copies of some std::filesystem symbols.
  struct stat info {};
  TORCH_CHECK(::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode), path,
              ": is a directory, expected a JSONL file");
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.is_open(), path, ": cannot open for reading: ", std::strerror(errno));

  ReadStats stats;
  std::string first_skip;  // kept even when max_skip_messages is 0, for the all-skipped error
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (blank(line)) continue;

    std::optional<Record> record;
    std::string error;
    try {
      const json j = json::parse(line);
      record.emplace(parse(j));
      record->source = Source{path, lineno};
    } catch (const json::parse_error& e) {
      error = "invalid JSON at byte " + std::to_string(e.byte) + ": " + parse_error_detail(e);
    } catch (const json::exception& e) {  // out_of_range.406: a number that overflows a double
      error = "invalid JSON: " + without_exception_id(e.what());
    } catch (const RecordError& e) {
      error = e.what();
    }
    if (!record) {
      const std::string message = path + ":" + std::to_string(lineno) + ": " + error;
      TORCH_CHECK(options.on_error() == OnError::Skip, message);
      if (static_cast<int64_t>(stats.skipped.messages.size()) < options.max_skip_messages()) {
        stats.skipped.messages.push_back(message);
      }
      if (stats.skipped.count == 0) first_skip = message;
      ++stats.skipped.count;
      continue;
    }
    ++stats.records;
    sink(std::move(*record));
  }
  TORCH_CHECK(!in.bad(), path, ": read error after line ", lineno, ": ", std::strerror(errno));
  if (stats.records == 0) {
    TORCH_CHECK(stats.skipped.count == 0, path, ": no records: all ", stats.skipped.count,
                " non-empty lines were skipped; the first: ", first_skip);
    TORCH_CHECK(false, path, ": no records: the file is empty");
  }
  return stats;
}

template <typename Record, typename Parse>
DataResult<Record> collect(const std::string& path, Parse parse, const ReadOptions& options) {
  DataResult<Record> result;
  const std::function<void(Record &&)> sink = [&result](Record&& r) { result.items.push_back(std::move(r)); };
  result.skipped = read_jsonl<Record>(path, parse, sink, options).skipped;
  return result;
}

}  // namespace

DataResult<PairRecord> read_pairs(const std::string& path, const ReadOptions& options) {
  return collect<PairRecord>(path, parse_pair, options);
}
ReadStats read_pairs(const std::string& path, const std::function<void(PairRecord&&)>& sink,
                     const ReadOptions& options) {
  return read_jsonl<PairRecord>(path, parse_pair, sink, options);
}

DataResult<JointPairRecord> read_joint_pairs(const std::string& path, const ReadOptions& options) {
  return collect<JointPairRecord>(path, parse_joint_pair, options);
}
ReadStats read_joint_pairs(const std::string& path, const std::function<void(JointPairRecord&&)>& sink,
                           const ReadOptions& options) {
  return read_jsonl<JointPairRecord>(path, parse_joint_pair, sink, options);
}

DataResult<ListRecord> read_lists(const std::string& path, const ReadOptions& options) {
  return collect<ListRecord>(path, parse_list, options);
}
ReadStats read_lists(const std::string& path, const std::function<void(ListRecord&&)>& sink,
                     const ReadOptions& options) {
  return read_jsonl<ListRecord>(path, parse_list, sink, options);
}

DataResult<UnpairedRecord> read_unpaired(const std::string& path, const ReadOptions& options) {
  return collect<UnpairedRecord>(path, parse_unpaired, options);
}
DataResult<CompletionRecord> read_completions(const std::string& path, const ReadOptions& options) {
  return collect<CompletionRecord>(path, parse_completion, options);
}
ReadStats read_completions(const std::string& path, const std::function<void(CompletionRecord&&)>& sink,
                           const ReadOptions& options) {
  return read_jsonl<CompletionRecord>(path, parse_completion, sink, options);
}

ReadStats read_unpaired(const std::string& path, const std::function<void(UnpairedRecord&&)>& sink,
                        const ReadOptions& options) {
  return read_jsonl<UnpairedRecord>(path, parse_unpaired, sink, options);
}

}  // namespace prefopt::data
