// Encoding (segments to ids, BOS/EOS, the truncation rule of EncodeOptions) and collation (examples to
// right-padded [N, T] batches with shifted labels). One loop over the ids fills each CPU tensor in place.
// Never pads on the left, never scores a prompt or padding token in `labels`, and never moves data to a device.
#include <prefopt/data/collate.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>

#include <c10/util/Exception.h>

namespace prefopt::data {
namespace {

// ---- encoding --------------------------------------------------------------------------------------------------

enum class Part { Prompt, Completion };

void check_options(const EncodeOptions& o) {
  TORCH_CHECK(o.max_prompt_length() >= 0, "EncodeOptions.max_prompt_length must be >= 0 (0 = no limit), got ",
              o.max_prompt_length());
  TORCH_CHECK(o.max_completion_length() >= 0, "EncodeOptions.max_completion_length must be >= 0 (0 = no limit), got ",
              o.max_completion_length());
  TORCH_CHECK(o.max_length() >= 0, "EncodeOptions.max_length must be >= 0 (0 = no limit), got ", o.max_length());
  TORCH_CHECK(o.max_skip_messages() >= 0, "EncodeOptions.max_skip_messages must be >= 0, got ", o.max_skip_messages());
  TORCH_CHECK(o.vocab_size() >= 0, "EncodeOptions.vocab_size must be >= 0 (0 = the tokenizer's), got ", o.vocab_size());
}

// The texts of a record's conversations, rendered as TRL's maybe_apply_chat_template renders them: the prompt
// with the generation prompt (or, when its last message is the assistant's, continuing that message), and each
// completion as the rendering of prompt + completion minus the prompt's text. The prompt text is narrowed to its
// common prefix with each full rendering in turn, as TRL does for templates whose generation prompt is not what
// the conversation continues with. texts[0] is the prompt's, texts[1 + k] completion k's; a segment that is not a
// conversation gets an empty text (unused).
std::vector<std::string> render_conversations(const Segment& prompt, const std::vector<const Segment*>& completions,
                                              const std::vector<std::string>& fields, const Tokenizer& tokenizer,
                                              const std::string& where) {
  std::vector<std::string> texts(1 + completions.size());
  bool any = prompt.kind == Segment::Kind::Messages;
  for (const Segment* c : completions) any = any || c->kind == Segment::Kind::Messages;
  if (!any) return texts;
  const std::vector<Message> no_messages;
  const std::vector<Message>& prompt_messages = prompt.kind == Segment::Kind::Messages ? prompt.messages : no_messages;
  const auto render = [&](const std::vector<Message>& messages, bool generation, bool cont, const std::string& field) {
    try {
      return tokenizer.apply_chat_template(messages, generation, cont);
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, where, ": field \"", field, "\": chat template: ", e.what_without_backtrace());
    } catch (const std::exception& e) {
      TORCH_CHECK(false, where, ": field \"", field, "\": chat template: ", e.what());
    }
  };
  const bool continues = !prompt_messages.empty() && prompt_messages.back().role == "assistant";
  std::string prompt_text = render(prompt_messages, !continues, continues, fields[0]);
  for (std::size_t k = 0; k < completions.size(); ++k) {
    if (completions[k]->kind != Segment::Kind::Messages) continue;
    const std::vector<Message>& messages = completions[k]->messages;
    TORCH_CHECK(!messages.empty() && messages[0].role == "assistant", where, ": field \"", fields[1 + k],
                "\": a completion must start with an \"assistant\" message, got ",
                messages.empty() ? std::string("none") : "\"" + messages[0].role + "\"");
    std::vector<Message> all = prompt_messages;
    all.insert(all.end(), completions[k]->messages.begin(), completions[k]->messages.end());
    const std::string full = render(all, false, false, fields[1 + k]);
    std::size_t common = 0;
    while (common < prompt_text.size() && common < full.size() && prompt_text[common] == full[common]) ++common;
    prompt_text.resize(common);
    texts[1 + k] = full.substr(common);
  }
  texts[0] = prompt_text;
  return texts;
}

// The ids of one segment, before truncation. `field` is the record's field ("chosen"), `where` its source;
// `rendered` is the segment's text when it is a conversation (render_conversations).
std::vector<int64_t> segment_ids(const Segment& segment, Part part, const Tokenizer& tokenizer, const EncodeOptions& o,
                                 const std::string& field, const std::string& where, const std::string& rendered) {
  const std::string name = segment.kind == Segment::Kind::Ids ? field + "_ids" : field;
  std::vector<int64_t> ids;
  if (segment.kind == Segment::Kind::Ids) {
    ids = segment.ids;
  } else {
    const bool chat = segment.kind == Segment::Kind::Messages;
    const std::optional<int64_t> special = part == Part::Prompt ? tokenizer.bos_id() : tokenizer.eos_id();
    // A model's own chat template ends an assistant turn itself (TRL appends no EOS to conversations).
    const bool add = part == Part::Prompt ? o.add_bos() : o.add_eos() && !(chat && tokenizer.has_chat_template());
    if (part == Part::Prompt && add && special) ids.push_back(*special);
    std::vector<int64_t> encoded;
    try {
      encoded = tokenizer.encode(chat ? rendered : segment.text);
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, where, ": field \"", name, "\": ", e.what_without_backtrace());
    }
    ids.insert(ids.end(), encoded.begin(), encoded.end());
    if (part == Part::Completion && add && special) ids.push_back(*special);
  }
  const int64_t vocab = o.vocab_size() > 0 ? o.vocab_size() : tokenizer.vocab_size();
  for (size_t i = 0; i < ids.size(); ++i) {
    TORCH_CHECK(ids[i] >= 0 && ids[i] < vocab, where, ": field \"", name, "\": token id ", ids[i], " at index ", i,
                " is outside the ", o.vocab_size() > 0 ? "model's" : "tokenizer's", " vocabulary [0, ", vocab, ")");
  }
  if (part == Part::Prompt) {
    TORCH_CHECK(!ids.empty(), where, ": field \"", name,
                "\": the prompt encodes to no token, so nothing predicts the first completion token (give a prompt "
                "or use a tokenizer with a BOS token)");
  } else {
    TORCH_CHECK(!ids.empty(), where, ": field \"", name, "\": empty completion (it encodes to no token)");
  }
  return ids;
}

// Rule 1, then the over-long check of rule 3.
std::vector<int64_t> encode_prompt(const Segment& segment, const Tokenizer& tokenizer, const EncodeOptions& o,
                                   const std::string& field, const std::string& where, const std::string& rendered) {
  std::vector<int64_t> ids = segment_ids(segment, Part::Prompt, tokenizer, o, field, where, rendered);
  const auto limit = static_cast<size_t>(o.max_prompt_length());
  if (limit > 0 && ids.size() > limit) {
    if (o.truncation_mode() == TruncationMode::KeepEnd) {
      ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(limit));
    } else {
      ids.resize(limit);
    }
  }
  if (o.max_length() > 0 && static_cast<int64_t>(ids.size()) >= o.max_length()) {
    const std::string name = segment.kind == Segment::Kind::Ids ? field + "_ids" : field;
    TORCH_CHECK(false, where, ": field \"", name, "\": over-long prompt: ", ids.size(),
                " tokens leave no room for a completion within max_length ", o.max_length(),
                " (set max_prompt_length below max_length to truncate it)");
  }
  return ids;
}

// Rules 2 and 3.
std::vector<int64_t> encode_completion(const Segment& segment, size_t prompt_length, const Tokenizer& tokenizer,
                                       const EncodeOptions& o, const std::string& field, const std::string& where,
                                       const std::string& rendered) {
  std::vector<int64_t> ids = segment_ids(segment, Part::Completion, tokenizer, o, field, where, rendered);
  if (o.max_completion_length() > 0 && ids.size() > static_cast<size_t>(o.max_completion_length())) {
    ids.resize(static_cast<size_t>(o.max_completion_length()));
  }
  if (o.max_length() > 0 && prompt_length + ids.size() > static_cast<size_t>(o.max_length())) {
    ids.resize(static_cast<size_t>(o.max_length()) - prompt_length);  // > 0: encode_prompt checked the room
  }
  return ids;
}

template <typename Example, typename Record>
DataResult<Example> encode_many(const std::vector<Record>& records, const Tokenizer& tokenizer,
                                const EncodeOptions& o) {
  check_options(o);
  TORCH_CHECK(!records.empty(), "encode_all: records is empty");
  DataResult<Example> result;
  result.items.reserve(records.size());
  std::string first_skip;
  for (const Record& record : records) {
    try {
      result.items.push_back(encode(record, tokenizer, o));
    } catch (const c10::Error& e) {
      if (o.on_error() != OnError::Skip) throw;
      const std::string message = e.what_without_backtrace();
      if (result.skipped.count == 0) first_skip = message;
      if (static_cast<int64_t>(result.skipped.messages.size()) < o.max_skip_messages()) {
        result.skipped.messages.push_back(message);
      }
      ++result.skipped.count;
    }
  }
  TORCH_CHECK(!result.items.empty(), "encode_all: all ", records.size(),
              " records were skipped; the first: ", first_skip);
  return result;
}

// ---- collation -------------------------------------------------------------------------------------------------

void check_options(const CollateOptions& o, const char* fn) {
  TORCH_CHECK(o.pad_token_id() >= 0, fn, ": CollateOptions.pad_token_id must be >= 0, got ", o.pad_token_id());
  TORCH_CHECK(o.pad_to_multiple_of() >= 1, fn, ": CollateOptions.pad_to_multiple_of must be >= 1, got ",
              o.pad_to_multiple_of());
  TORCH_CHECK(o.list_size() >= 0, fn, ": CollateOptions.list_size must be >= 0 (0 = the longest list), got ",
              o.list_size());
}

void check_ids(const std::vector<int64_t>& ids, bool allow_empty, const char* fn, const std::string& name) {
  TORCH_CHECK(allow_empty || !ids.empty(), fn, ": ", name, " is empty",
              name.find("prompt") != std::string::npos ? ": nothing would predict the first completion token" : "");
  for (size_t i = 0; i < ids.size(); ++i) {
    TORCH_CHECK(ids[i] >= 0, fn, ": ", name, "[", i, "] = ", ids[i], " is negative");
  }
}

struct Row {
  const std::vector<int64_t>* prompt;
  const std::vector<int64_t>* completion;  // empty only for a missing list slot
};

// Fills a SequenceBatch (and, when asked, joint labels) from rows that were checked by the caller.
SequenceBatch collate_rows(const std::vector<Row>& rows, const CollateOptions& o, torch::Tensor* joint_labels) {
  const auto n = static_cast<int64_t>(rows.size());
  int64_t t = 1;
  for (const Row& r : rows) t = std::max<int64_t>(t, static_cast<int64_t>(r.prompt->size() + r.completion->size()));
  t = (t + o.pad_to_multiple_of() - 1) / o.pad_to_multiple_of() * o.pad_to_multiple_of();

  const auto opts = torch::TensorOptions().dtype(torch::kLong);
  SequenceBatch b;
  b.input_ids = torch::full({n, t}, o.pad_token_id(), opts);
  b.attention_mask = torch::zeros({n, t}, opts);
  b.labels = torch::full({n, t}, o.ignore_index(), opts);
  b.prompt_lengths = torch::empty({n}, opts);
  b.completion_lengths = torch::empty({n}, opts);
  if (joint_labels != nullptr) *joint_labels = torch::full({n, t}, o.ignore_index(), opts);

  int64_t* ids = b.input_ids.data_ptr<int64_t>();
  int64_t* mask = b.attention_mask.data_ptr<int64_t>();
  int64_t* labels = b.labels.data_ptr<int64_t>();
  int64_t* joint = joint_labels != nullptr ? joint_labels->data_ptr<int64_t>() : nullptr;
  int64_t* prompt_lengths = b.prompt_lengths.data_ptr<int64_t>();
  int64_t* completion_lengths = b.completion_lengths.data_ptr<int64_t>();
  for (int64_t r = 0; r < n; ++r) {
    const auto& p = *rows[r].prompt;
    const auto& c = *rows[r].completion;
    const auto np = static_cast<int64_t>(p.size());
    const auto nc = static_cast<int64_t>(c.size());
    int64_t* row_ids = ids + r * t;
    std::copy(p.begin(), p.end(), row_ids);
    std::copy(c.begin(), c.end(), row_ids + np);
    std::fill(mask + r * t, mask + r * t + np + nc, int64_t{1});
    // Position j predicts token j + 1: the completion's tokens sit at np .. np + nc - 1, predicted from
    // np - 1 .. np + nc - 2.
    std::copy(c.begin(), c.end(), labels + r * t + np - 1);
    if (joint != nullptr) std::copy(row_ids + 1, row_ids + np + nc, joint + r * t);
    prompt_lengths[r] = np;
    completion_lengths[r] = nc;
  }
  return b;
}

}  // namespace

// ---- encode ----------------------------------------------------------------------------------------------------

PairExample encode(const PairRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options) {
  check_options(options);
  const std::string where = to_string(record.source);
  const auto texts = render_conversations(record.prompt, {&record.chosen, &record.rejected},
                                          {"prompt", "chosen", "rejected"}, tokenizer, where);
  PairExample ex;
  ex.prompt = encode_prompt(record.prompt, tokenizer, options, "prompt", where, texts[0]);
  ex.chosen = encode_completion(record.chosen, ex.prompt.size(), tokenizer, options, "chosen", where, texts[1]);
  ex.rejected = encode_completion(record.rejected, ex.prompt.size(), tokenizer, options, "rejected", where, texts[2]);
  ex.margin = record.margin;
  ex.magnitude = record.magnitude;
  return ex;
}

JointPairExample encode(const JointPairRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options) {
  check_options(options);
  const std::string where = to_string(record.source);
  const auto chosen_texts =
      render_conversations(record.chosen_prompt, {&record.chosen}, {"chosen_prompt", "chosen"}, tokenizer, where);
  const auto rejected_texts = render_conversations(record.rejected_prompt, {&record.rejected},
                                                   {"rejected_prompt", "rejected"}, tokenizer, where);
  JointPairExample ex;
  ex.chosen_prompt = encode_prompt(record.chosen_prompt, tokenizer, options, "chosen_prompt", where, chosen_texts[0]);
  ex.chosen =
      encode_completion(record.chosen, ex.chosen_prompt.size(), tokenizer, options, "chosen", where, chosen_texts[1]);
  ex.rejected_prompt =
      encode_prompt(record.rejected_prompt, tokenizer, options, "rejected_prompt", where, rejected_texts[0]);
  ex.rejected = encode_completion(record.rejected, ex.rejected_prompt.size(), tokenizer, options, "rejected", where,
                                  rejected_texts[1]);
  return ex;
}

ListExample encode(const ListRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options) {
  check_options(options);
  const std::string where = to_string(record.source);
  TORCH_CHECK(!record.responses.empty(), where,
              ": field \"responses\": empty list: a ranked list needs at least one "
              "response");
  TORCH_CHECK(record.labels.size() == record.responses.size(), where, ": field \"",
              record.label_kind == ListLabelKind::Scores ? "scores" : "ranks", "\": has ", record.labels.size(),
              " entries but \"responses\" has ", record.responses.size());
  std::vector<const Segment*> responses;
  std::vector<std::string> fields{"prompt"};
  for (size_t k = 0; k < record.responses.size(); ++k) {
    responses.push_back(&record.responses[k]);
    fields.push_back("responses[" + std::to_string(k) + "]");
  }
  const auto texts = render_conversations(record.prompt, responses, fields, tokenizer, where);
  ListExample ex;
  ex.prompt = encode_prompt(record.prompt, tokenizer, options, "prompt", where, texts[0]);
  for (size_t k = 0; k < record.responses.size(); ++k) {
    ex.responses.push_back(encode_completion(record.responses[k], ex.prompt.size(), tokenizer, options, fields[1 + k],
                                             where, texts[1 + k]));
  }
  ex.labels = record.labels;
  ex.label_kind = record.label_kind;
  return ex;
}

UnpairedExample encode(const UnpairedRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options) {
  check_options(options);
  const std::string where = to_string(record.source);
  const auto texts =
      render_conversations(record.prompt, {&record.completion}, {"prompt", "completion"}, tokenizer, where);
  UnpairedExample ex;
  ex.prompt = encode_prompt(record.prompt, tokenizer, options, "prompt", where, texts[0]);
  ex.completion =
      encode_completion(record.completion, ex.prompt.size(), tokenizer, options, "completion", where, texts[1]);
  ex.label = record.label;
  return ex;
}

namespace {

// TRL's language-modelling SFT records: the text with the tokenizer's own special tokens and an EOS (as TRL
// tokenizes text + eos_token), or the conversation as the chat template renders it; the first token is the
// prompt, so every later one is trained on, and the truncation rule keeps the start.
CompletionExample encode_language_modeling(const CompletionRecord& record, const Tokenizer& tokenizer,
                                           const EncodeOptions& o, const std::string& where) {
  const bool chat = record.completion.kind == Segment::Kind::Messages;
  const std::string field = chat ? "messages" : "text";
  std::vector<int64_t> ids;
  try {
    if (chat) {
      ids = tokenizer.encode(tokenizer.apply_chat_template(record.completion.messages, false, false));
    } else {
      if (o.add_bos() && tokenizer.bos_id()) ids.push_back(*tokenizer.bos_id());
      const std::vector<int64_t> text = tokenizer.encode_with_special_tokens(record.completion.text);
      ids.insert(ids.end(), text.begin(), text.end());
    }
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, where, ": field \"", field, "\": ", e.what_without_backtrace());
  } catch (const std::exception& e) {
    TORCH_CHECK(false, where, ": field \"", field, "\": ", e.what());
  }
  const bool eos = o.add_eos() && tokenizer.eos_id() && !(chat && tokenizer.has_chat_template());
  if (eos && (ids.empty() || ids.back() != *tokenizer.eos_id())) ids.push_back(*tokenizer.eos_id());
  const int64_t vocab = o.vocab_size() > 0 ? o.vocab_size() : tokenizer.vocab_size();
  for (size_t i = 0; i < ids.size(); ++i) {
    TORCH_CHECK(ids[i] >= 0 && ids[i] < vocab, where, ": field \"", field, "\": token id ", ids[i], " at index ", i,
                " is outside the vocabulary [0, ", vocab, ")");
  }
  TORCH_CHECK(ids.size() >= 2, where, ": field \"", field, "\": encodes to ", ids.size(),
              " token(s); language modelling needs at least two (one to predict from, one to predict)");
  const size_t limit = o.max_length() > 0 ? static_cast<size_t>(o.max_length()) : ids.size();
  TORCH_CHECK(limit >= 2, where, ": field \"", field, "\": max_length ", o.max_length(), " leaves no token to train on");
  if (ids.size() > limit) ids.resize(limit);
  CompletionExample ex;
  ex.prompt.assign(ids.begin(), ids.begin() + 1);
  ex.completion.assign(ids.begin() + 1, ids.end());
  return ex;
}

}  // namespace

CompletionExample encode(const CompletionRecord& record, const Tokenizer& tokenizer, const EncodeOptions& options) {
  check_options(options);
  const std::string where = to_string(record.source);
  if (record.language_modeling) return encode_language_modeling(record, tokenizer, options, where);
  const auto texts =
      render_conversations(record.prompt, {&record.completion}, {"prompt", "completion"}, tokenizer, where);
  CompletionExample ex;
  ex.prompt = encode_prompt(record.prompt, tokenizer, options, "prompt", where, texts[0]);
  ex.completion =
      encode_completion(record.completion, ex.prompt.size(), tokenizer, options, "completion", where, texts[1]);
  return ex;
}

DataResult<CompletionExample> encode_all(const std::vector<CompletionRecord>& records, const Tokenizer& tokenizer,
                                         const EncodeOptions& options) {
  return encode_many<CompletionExample>(records, tokenizer, options);
}

DataResult<PairExample> encode_all(const std::vector<PairRecord>& records, const Tokenizer& tokenizer,
                                   const EncodeOptions& options) {
  return encode_many<PairExample>(records, tokenizer, options);
}
DataResult<JointPairExample> encode_all(const std::vector<JointPairRecord>& records, const Tokenizer& tokenizer,
                                        const EncodeOptions& options) {
  return encode_many<JointPairExample>(records, tokenizer, options);
}
DataResult<ListExample> encode_all(const std::vector<ListRecord>& records, const Tokenizer& tokenizer,
                                   const EncodeOptions& options) {
  return encode_many<ListExample>(records, tokenizer, options);
}
DataResult<UnpairedExample> encode_all(const std::vector<UnpairedRecord>& records, const Tokenizer& tokenizer,
                                       const EncodeOptions& options) {
  return encode_many<UnpairedExample>(records, tokenizer, options);
}

// ---- collate ---------------------------------------------------------------------------------------------------

SequenceBatch collate_sequences(const std::vector<std::vector<int64_t>>& prompts,
                                const std::vector<std::vector<int64_t>>& completions, const CollateOptions& options) {
  constexpr const char* fn = "collate_sequences";
  check_options(options, fn);
  TORCH_CHECK(!prompts.empty(), fn, ": prompts is empty; a batch needs at least one row");
  TORCH_CHECK(prompts.size() == completions.size(), fn, ": prompts has ", prompts.size(), " rows but completions has ",
              completions.size());
  std::vector<Row> rows;
  for (size_t i = 0; i < prompts.size(); ++i) {
    check_ids(prompts[i], false, fn, "prompts[" + std::to_string(i) + "]");
    check_ids(completions[i], false, fn, "completions[" + std::to_string(i) + "]");
    rows.push_back({&prompts[i], &completions[i]});
  }
  return collate_rows(rows, options, nullptr);
}

PairBatch collate_pairs(const std::vector<PairExample>& examples, const CollateOptions& options) {
  constexpr const char* fn = "collate_pairs";
  check_options(options, fn);
  TORCH_CHECK(!examples.empty(), fn, ": examples is empty; a batch needs at least one pair");
  std::vector<Row> rows(2 * examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    const std::string at = "examples[" + std::to_string(i) + "].";
    check_ids(e.prompt, false, fn, at + "prompt");
    check_ids(e.chosen, false, fn, at + "chosen");
    check_ids(e.rejected, false, fn, at + "rejected");
    rows[i] = {&e.prompt, &e.chosen};
    rows[examples.size() + i] = {&e.prompt, &e.rejected};
  }
  PairBatch batch;
  static_cast<SequenceBatch&>(batch) = collate_rows(rows, options, nullptr);
  batch.num_pairs = static_cast<int64_t>(examples.size());
  auto numbers = [&](const char* name, std::optional<double> PairExample::*field) {
    std::vector<double> values;
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto& v = examples[i].*field;
      TORCH_CHECK(v.has_value() == (examples[0].*field).has_value(), fn, ": examples[", i, "] ",
                  v ? "has" : "has no", " ", name, " but examples[0] ", v ? "has none" : "has one",
                  "; give it for every pair or for none");
      if (v) values.push_back(*v);
    }
    return values.empty() ? torch::Tensor() : torch::tensor(values, torch::kFloat64);
  };
  batch.margins = numbers("margin", &PairExample::margin);
  batch.magnitudes = numbers("magnitude", &PairExample::magnitude);
  return batch;
}

JointPairBatch collate_joint_pairs(const std::vector<JointPairExample>& examples, const CollateOptions& options) {
  constexpr const char* fn = "collate_joint_pairs";
  check_options(options, fn);
  TORCH_CHECK(!examples.empty(), fn, ": examples is empty; a batch needs at least one pair");
  std::vector<Row> rows(2 * examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    const std::string at = "examples[" + std::to_string(i) + "].";
    check_ids(e.chosen_prompt, false, fn, at + "chosen_prompt");
    check_ids(e.chosen, false, fn, at + "chosen");
    check_ids(e.rejected_prompt, false, fn, at + "rejected_prompt");
    check_ids(e.rejected, false, fn, at + "rejected");
    rows[i] = {&e.chosen_prompt, &e.chosen};
    rows[examples.size() + i] = {&e.rejected_prompt, &e.rejected};
  }
  JointPairBatch batch;
  static_cast<SequenceBatch&>(batch) = collate_rows(rows, options, &batch.joint_labels);
  batch.num_pairs = static_cast<int64_t>(examples.size());
  return batch;
}

ListBatch collate_lists(const std::vector<ListExample>& examples, const CollateOptions& options) {
  constexpr const char* fn = "collate_lists";
  check_options(options, fn);
  TORCH_CHECK(!examples.empty(), fn, ": examples is empty; a batch needs at least one list");
  size_t k_max = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    const std::string at = "examples[" + std::to_string(i) + "]";
    TORCH_CHECK(!e.responses.empty(), fn, ": ", at, ".responses is empty; a list needs at least one response");
    TORCH_CHECK(e.labels.size() == e.responses.size(), fn, ": ", at, ".labels has ", e.labels.size(), " entries but ",
                at, ".responses has ", e.responses.size());
    TORCH_CHECK(e.label_kind == examples[0].label_kind, fn, ": ", at, " holds ",
                e.label_kind == ListLabelKind::Scores ? "scores" : "ranks", " but examples[0] holds ",
                examples[0].label_kind == ListLabelKind::Scores ? "scores" : "ranks", "; a batch needs one kind");
    k_max = std::max(k_max, e.responses.size());
  }
  const size_t k = options.list_size() > 0 ? static_cast<size_t>(options.list_size()) : k_max;
  TORCH_CHECK(k_max <= k, fn, ": a list has ", k_max, " responses, more than CollateOptions.list_size ", k);

  static const std::vector<int64_t> kNoCompletion;
  std::vector<Row> rows(examples.size() * k);
  const auto b = static_cast<int64_t>(examples.size());
  const auto kk = static_cast<int64_t>(k);
  ListBatch batch;
  batch.list_labels = torch::zeros({b, kk}, torch::kDouble);
  batch.list_mask = torch::zeros({b, kk}, torch::kBool);
  double* labels = batch.list_labels.data_ptr<double>();
  bool* mask = batch.list_mask.data_ptr<bool>();
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    const std::string at = "examples[" + std::to_string(i) + "].";
    check_ids(e.prompt, false, fn, at + "prompt");
    for (size_t j = 0; j < k; ++j) {
      if (j < e.responses.size()) {
        check_ids(e.responses[j], false, fn, at + "responses[" + std::to_string(j) + "]");
        rows[i * k + j] = {&e.prompt, &e.responses[j]};
        TORCH_CHECK(std::isfinite(e.labels[j]), fn, ": ", at, "labels[", j, "] = ", e.labels[j], " is not finite");
        labels[i * k + j] = e.labels[j];
        mask[i * k + j] = true;
      } else {
        rows[i * k + j] = {&e.prompt, &kNoCompletion};
      }
    }
  }
  static_cast<SequenceBatch&>(batch) = collate_rows(rows, options, nullptr);
  batch.label_kind = examples[0].label_kind;
  batch.num_lists = b;
  batch.list_size = kk;
  return batch;
}

UnpairedBatch collate_unpaired(const std::vector<UnpairedExample>& examples, const CollateOptions& options) {
  constexpr const char* fn = "collate_unpaired";
  check_options(options, fn);
  TORCH_CHECK(!examples.empty(), fn, ": examples is empty; a batch needs at least one example");
  std::vector<Row> rows(examples.size());
  UnpairedBatch batch;
  batch.desirable = torch::empty({static_cast<int64_t>(examples.size())}, torch::kBool);
  bool* desirable = batch.desirable.data_ptr<bool>();
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    const std::string at = "examples[" + std::to_string(i) + "].";
    check_ids(e.prompt, false, fn, at + "prompt");
    check_ids(e.completion, false, fn, at + "completion");
    rows[i] = {&e.prompt, &e.completion};
    desirable[i] = e.label;
  }
  static_cast<SequenceBatch&>(batch) = collate_rows(rows, options, nullptr);
  return batch;
}

std::vector<UnpairedExample> kto_kl_examples(const std::vector<UnpairedExample>& examples, int64_t max_length) {
  TORCH_CHECK(examples.size() >= 2, "kto_kl_examples: needs at least 2 examples to mismatch, got ", examples.size());
  TORCH_CHECK(max_length >= 0, "kto_kl_examples: max_length must be >= 0 (0 = no limit), got ", max_length);
  const size_t n = examples.size();
  std::vector<UnpairedExample> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].prompt = examples[i].prompt;
    out[i].label = examples[i].label;
    out[i].completion = examples[(i + n - 1) % n].completion;
    if (max_length > 0) {
      const auto room = max_length - static_cast<int64_t>(out[i].prompt.size());
      TORCH_CHECK(room > 0, "kto_kl_examples: examples[", i, "].prompt has ", out[i].prompt.size(),
                  " tokens, leaving no room for a completion within max_length ", max_length);
      if (static_cast<int64_t>(out[i].completion.size()) > room) out[i].completion.resize(static_cast<size_t>(room));
    }
  }
  return out;
}

}  // namespace prefopt::data
