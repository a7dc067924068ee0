// HFTokenizer: loads tokenizer.json into its components and runs the encode pipeline Hugging Face's Rust library
// runs (added tokens on the raw text, normalizer, added tokens on the normalized text, pre-tokenizer, model,
// post-processor) and its decode (tokens, special ones skipped on request, decoder). Never tracks offsets unless
// asked (the plain encode path allocates no alignment), and never accepts text that is not UTF-8.
#include <prefopt/data/hf_tokenizer.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <fstream>
#include <numeric>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include "../common/files.h"
#include "hf/added_vocabulary.h"
#include "hf/components.h"
#include "hf/post_processors.h"
#include "hf/utf8.h"
#include "hf_tokenizer_files.h"

namespace prefopt::data {

using nlohmann::json;

struct HFTokenizer::Impl {
  std::string source;
  std::string json_text;
  std::vector<hf::AddedToken> added;
  std::unordered_map<int32_t, std::size_t> added_by_id;
  std::unordered_map<std::string, int32_t> added_by_content;
  hf::AddedTokenMatcher raw_matcher, normalized_matcher;
  std::unique_ptr<hf::Normalizer> normalizer;
  std::unique_ptr<hf::PreTokenizer> pre_tokenizer;
  std::unique_ptr<hf::Model> model;
  std::unique_ptr<hf::PostProcessor> post_processor;
  std::unique_ptr<hf::Decoder> decoder;
  int64_t vocab_size = 0;
  hf::TokenizerConfig config;

  std::optional<int32_t> token_to_id(std::string_view token) const {
    auto it = added_by_content.find(std::string(token));
    if (it != added_by_content.end()) return it->second;
    return model->token_to_id(token);
  }
  const std::string* id_to_token(int32_t id) const {
    auto it = added_by_id.find(id);
    if (it != added_by_id.end()) return &added[it->second].content;
    return model->id_to_token(id);
  }

  void encode(std::string_view text, bool add_special_tokens, bool offsets, hf::TokenSequence& seq) const;
  void encode_unchecked(std::string_view text, bool add_special_tokens, bool offsets, hf::TokenSequence& seq) const;
  // Tokenizes one run of text (no added token in it): normalizes it, splits out normalized added tokens,
  // pre-tokenizes and runs the model. `piece` carries the run's text and, with offsets, its origin.
  void encode_run(hf::Piece piece, bool run_is_first, hf::TokenSequence& seq) const;
};

namespace {

std::string read_text_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), what, " ", path, ": cannot be opened");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  TORCH_CHECK(!in.bad(), what, " ", path, ": read failed");
  return buffer.str();
}

void append_token(hf::TokenSequence& seq, int32_t id, std::string token, std::size_t begin, std::size_t end) {
  seq.ids.push_back(id);
  seq.tokens.push_back(std::move(token));
  seq.offsets.emplace_back(begin, end);
}

std::vector<uint32_t> identity_origin(std::size_t begin, std::size_t end) {
  std::vector<uint32_t> origin(end - begin + 1);
  std::iota(origin.begin(), origin.end(), static_cast<uint32_t>(begin));
  return origin;
}

}  // namespace

void HFTokenizer::Impl::encode_run(hf::Piece piece, bool run_is_first, hf::TokenSequence& seq) const {
  const bool offsets = !piece.origin.empty();
  if (normalizer) normalizer->normalize(piece);
  std::vector<hf::AddedSplit> splits;
  if (normalized_matcher.empty()) {
    splits.push_back({-1, 0, piece.text.size()});
  } else {
    normalized_matcher.split(piece.text, splits);
  }
  std::vector<hf::Piece> pieces;
  std::vector<hf::Token> tokens;
  for (const hf::AddedSplit& split : splits) {
    const std::size_t ob = offsets ? piece.origin[split.begin] : 0, oe = offsets ? piece.origin[split.end] : 0;
    if (split.id >= 0) {
      // The token's string is the text it matched, spaces that lstrip / rstrip took included (as in Rust).
      append_token(seq, split.id, piece.text.substr(split.begin, split.end - split.begin), ob, oe);
      continue;
    }
    if (split.begin == split.end) continue;
    pieces.clear();
    if (splits.size() == 1) {
      pieces.push_back(std::move(piece));  // the only split: `piece` is not read again
    } else {
      pieces.push_back(hf::slice(piece, split.begin, split.end));
    }
    if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces, run_is_first && split.begin == 0);
    for (const hf::Piece& p : pieces) {
      if (p.text.empty()) continue;
      tokens.clear();
      model->tokenize(p.text, tokens);
      for (hf::Token& t : tokens) {
        // Rust's BPE can report a range past the piece (byte_fallback spelling a continuing-subword prefix):
        // clamp it to the piece, as the offsets can only cover text that exists.
        const std::size_t tb = std::min<std::size_t>(t.begin, p.text.size());
        const std::size_t te = std::min<std::size_t>(std::max<std::size_t>(t.end, tb), p.text.size());
        const std::size_t b = offsets ? p.origin[tb] : 0, e = offsets ? p.origin[te] : 0;
        append_token(seq, t.id, std::move(t.value), b, e);
      }
    }
  }
}

void HFTokenizer::Impl::encode(std::string_view text, bool add_special_tokens, bool offsets,
                               hf::TokenSequence& seq) const {
  try {
    encode_unchecked(text, add_special_tokens, offsets, seq);
  } catch (const hf::FormatError& e) {
    // A model that needs a token its file lacks (an unk_token missing from the vocabulary) fails only when a text
    // needs it: report it as the library's error, naming the file and the JSON path.
    TORCH_CHECK(false, e.what());
  }
}

void HFTokenizer::Impl::encode_unchecked(std::string_view text, bool add_special_tokens, bool offsets,
                                         hf::TokenSequence& seq) const {
  const std::size_t bad = hf::utf8::first_invalid(text);
  TORCH_CHECK(bad == text.size(), "HFTokenizer::encode: the text is not valid UTF-8 at byte ", bad,
              " (decode it with replacement first, e.g. Python's bytes.decode('utf-8', errors='replace'))");
  std::vector<hf::AddedSplit> splits;
  if (raw_matcher.empty()) {
    splits.push_back({-1, 0, text.size()});
  } else {
    raw_matcher.split(text, splits);
  }
  for (const hf::AddedSplit& split : splits) {
    if (split.id >= 0) {
      append_token(seq, split.id, std::string(text.substr(split.begin, split.end - split.begin)), split.begin,
                   split.end);
      continue;
    }
    if (split.begin == split.end) continue;
    hf::Piece piece;
    piece.text.assign(text.data() + split.begin, split.end - split.begin);
    if (offsets) piece.origin = identity_origin(split.begin, split.end);
    encode_run(std::move(piece), split.begin == 0, seq);
  }
  if (post_processor) post_processor->process(seq, add_special_tokens);
}

// ---- loading ---------------------------------------------------------------------------------------------------

HFTokenizer HFTokenizer::from_json_string(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    TORCH_CHECK(false, source, ": invalid JSON at byte ", e.byte, ": ", e.what());
  }
  const hf::JsonContext root{source};
  auto impl = std::make_shared<Impl>();
  impl->source = source;
  impl->json_text = json_text;
  try {
    if (!j.is_object()) root.fail("expected a JSON object, got " + std::string(j.type_name()));
    if (!j.contains("model")) root.at("model").fail("missing: a tokenizer.json always has a model");
    const auto field = [&](const char* key) -> const json& {
      static const json null;
      return j.contains(key) ? j[key] : null;
    };
    impl->model = hf::make_model(j["model"], root.at("model"));
    impl->normalizer = hf::make_normalizer(field("normalizer"), root.at("normalizer"));
    impl->pre_tokenizer = hf::make_pre_tokenizer(field("pre_tokenizer"), root.at("pre_tokenizer"));
    impl->post_processor = hf::make_post_processor(field("post_processor"), root.at("post_processor"));
    impl->decoder = hf::make_decoder(field("decoder"), root.at("decoder"));
    impl->added = hf::parse_added_tokens(field("added_tokens"), root.at("added_tokens"));
  } catch (const hf::FormatError& e) {
    TORCH_CHECK(false, e.what());
  }
  int64_t max_id = static_cast<int64_t>(impl->model->vocab_size()) - 1;
  std::vector<std::string> raw_patterns, normalized_patterns;
  std::vector<const hf::AddedToken*> raw_tokens, normalized_tokens;
  for (std::size_t i = 0; i < impl->added.size(); ++i) {
    const hf::AddedToken& t = impl->added[i];
    impl->added_by_id.emplace(t.id, i);
    impl->added_by_content.emplace(t.content, t.id);
    max_id = std::max<int64_t>(max_id, t.id);
  }
  // Hugging Face matches special tokens first, then the others, each group in file order; the first pattern
  // declared wins a tie, so the order is kept here.
  for (const bool special : {true, false}) {
    for (const hf::AddedToken& t : impl->added) {
      if (t.special != special) continue;
      if (t.normalized) {
        hf::Piece p{t.content, {}};
        if (impl->normalizer) impl->normalizer->normalize(p);
        normalized_patterns.push_back(p.text);
        normalized_tokens.push_back(&t);
      } else {
        raw_patterns.push_back(t.content);
        raw_tokens.push_back(&t);
      }
    }
  }
  impl->raw_matcher = hf::AddedTokenMatcher(std::move(raw_patterns), std::move(raw_tokens));
  impl->normalized_matcher = hf::AddedTokenMatcher(std::move(normalized_patterns), std::move(normalized_tokens));
  impl->vocab_size = max_id + 1;
  return HFTokenizer(std::move(impl));
}

HFTokenizer HFTokenizer::from_file(const std::string& tokenizer_json_path) {
  return from_json_string(read_text_file(tokenizer_json_path, "tokenizer file"), tokenizer_json_path);
}

HFTokenizer HFTokenizer::from_pretrained(const std::string& folder) {
  const std::string path = files::join(folder, "tokenizer.json");
  TORCH_CHECK(files::status(folder).directory, "HFTokenizer::from_pretrained: ", folder, " is not a folder");
  TORCH_CHECK(files::exists(path), "HFTokenizer::from_pretrained: ", folder,
              " has no tokenizer.json; prefopt reads Hugging Face fast tokenizers only. Write one with Python: "
              "transformers.AutoTokenizer.from_pretrained(folder).save_pretrained(folder)");
  HFTokenizer tokenizer = from_file(path);
  auto impl = std::const_pointer_cast<Impl>(tokenizer.impl_);
  impl->config = hf::read_tokenizer_config(folder, [&](const std::string& token) -> std::optional<int64_t> {
    const auto id = impl->token_to_id(token);
    return id ? std::optional<int64_t>(*id) : std::nullopt;
  });
  return tokenizer;
}

// ---- encoding and decoding -------------------------------------------------------------------------------------

std::vector<int64_t> HFTokenizer::encode(std::string_view text) const { return encode(text, false); }

std::vector<int64_t> HFTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  hf::TokenSequence seq;
  impl_->encode(text, add_special_tokens, false, seq);
  return std::vector<int64_t>(seq.ids.begin(), seq.ids.end());
}

Encoding HFTokenizer::encode_with_offsets(std::string_view text, bool add_special_tokens) const {
  hf::TokenSequence seq;
  impl_->encode(text, add_special_tokens, true, seq);
  Encoding out;
  out.ids.assign(seq.ids.begin(), seq.ids.end());
  out.tokens = std::move(seq.tokens);
  out.offsets = std::move(seq.offsets);
  return out;
}

std::vector<std::vector<int64_t>> HFTokenizer::encode_batch(const std::vector<std::string>& texts,
                                                            bool add_special_tokens, int64_t num_threads) const {
  TORCH_CHECK(num_threads >= 0, "HFTokenizer::encode_batch: num_threads must be >= 0 (0 = all cores), got ",
              num_threads);
  std::vector<std::vector<int64_t>> out(texts.size());
  std::size_t threads = num_threads > 0 ? static_cast<std::size_t>(num_threads)
                                        : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, texts.size());
  if (threads <= 1) {
    for (std::size_t i = 0; i < texts.size(); ++i) out[i] = encode(texts[i], add_special_tokens);
    return out;
  }
  // Texts are handed out in small blocks from a shared counter, so long and short texts balance across threads;
  // the first error is kept and rethrown on the caller's thread.
  std::atomic<std::size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  const auto work = [&] {
    constexpr std::size_t kBlock = 16;
    for (;;) {
      const std::size_t begin = next.fetch_add(kBlock);
      if (begin >= texts.size()) return;
      const std::size_t end = std::min(texts.size(), begin + kBlock);
      try {
        for (std::size_t i = begin; i < end; ++i) out[i] = encode(texts[i], add_special_tokens);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = texts.size();
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  return out;
}

std::string HFTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    const std::string* token = id >= 0 && id <= INT32_MAX ? impl_->id_to_token(static_cast<int32_t>(id)) : nullptr;
    TORCH_CHECK(token != nullptr, "HFTokenizer::decode: ids[", i, "] = ", id, " is not a token of ", impl_->source);
    if (skip_special_tokens && is_special(id)) continue;
    tokens.push_back(*token);
  }
  if (!impl_->decoder) {
    std::string out;
    for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  impl_->decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::optional<int64_t> HFTokenizer::token_to_id(std::string_view token) const {
  const auto id = impl_->token_to_id(token);
  return id ? std::optional<int64_t>(*id) : std::nullopt;
}

std::optional<std::string> HFTokenizer::id_to_token(int64_t id) const {
  const std::string* token = id >= 0 && id <= INT32_MAX ? impl_->id_to_token(static_cast<int32_t>(id)) : nullptr;
  return token ? std::optional<std::string>(*token) : std::nullopt;
}

bool HFTokenizer::is_special(int64_t id) const {
  if (id < 0 || id > INT32_MAX) return false;
  auto it = impl_->added_by_id.find(static_cast<int32_t>(id));
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

int64_t HFTokenizer::vocab_size() const { return impl_->vocab_size; }
std::optional<int64_t> HFTokenizer::bos_id() const { return impl_->config.bos_id; }
std::optional<int64_t> HFTokenizer::eos_id() const { return impl_->config.eos_id; }
int64_t HFTokenizer::pad_id() const {
  if (impl_->config.pad_id) return *impl_->config.pad_id;
  if (impl_->config.eos_id) return *impl_->config.eos_id;
  return 0;
}
const std::vector<std::pair<std::string, std::string>>& HFTokenizer::special_tokens() const {
  return impl_->config.special_tokens;
}

// ---- chat templates and saving -----------------------------------------------------------------------------------

bool HFTokenizer::has_chat_template() const { return !impl_->config.templates.empty(); }

std::vector<std::string> HFTokenizer::chat_template_names() const {
  std::vector<std::string> names;
  for (const auto& t : impl_->config.templates) names.push_back(t.name);
  return names;
}

RenderedChat HFTokenizer::apply_chat_template(ChatTemplateInputs inputs, const std::string& template_name) const {
  const hf::NamedTemplate* chosen = impl_->config.find_template(template_name);
  if (chosen == nullptr) {
    std::string names;
    for (const auto& t : impl_->config.templates) names += (names.empty() ? "" : ", ") + t.name;
    TORCH_CHECK(!impl_->config.templates.empty(), "HFTokenizer::apply_chat_template: ", impl_->source,
                " has no chat template (tokenizer_config.json's chat_template or chat_template.jinja)");
    TORCH_CHECK(false, "HFTokenizer::apply_chat_template: no chat template named \"", template_name,
                "\"; the tokenizer has ", names);
  }
  for (const auto& st : impl_->config.special_tokens) {
    const bool given = std::any_of(inputs.special_tokens.begin(), inputs.special_tokens.end(),
                                   [&](const auto& p) { return p.first == st.first; });
    if (!given) inputs.special_tokens.push_back(st);
  }
  return chosen->compiled->render(inputs);
}

std::string HFTokenizer::apply_chat_template(const std::vector<Message>& messages, bool add_generation_prompt,
                                             bool continue_final_message) const {
  json list = json::array();
  for (const Message& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  ChatTemplateInputs inputs;
  inputs.messages_json = list.dump(-1, ' ', false, json::error_handler_t::strict);
  inputs.add_generation_prompt = add_generation_prompt;
  inputs.continue_final_message = continue_final_message;
  return apply_chat_template(std::move(inputs)).text;
}

void HFTokenizer::save_pretrained(const std::string& folder) const {
  hf::write_tokenizer_files(folder, impl_->json_text, impl_->config);
}

}  // namespace prefopt::data
