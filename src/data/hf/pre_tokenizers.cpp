// The pre-tokenizers of tokenizer.json ("pre_tokenizer"), built from their JSON by make_pre_tokenizer: each splits
// pieces (and ByteLevel and Metaspace rewrite them) exactly as Hugging Face's Rust library splits a
// PreTokenizedString, origins included. Never copies a piece a step leaves whole, never builds origins the caller
// did not ask for (but for Metaspace's "first" after a split, which needs them and drops them again), and never
// accepts a JSON object the Rust library would reject for a missing or mistyped field it reads (it does accept the
// old Metaspace form {"add_prefix_space": false} without prepend_scheme, which tokenizers 0.23 refuses).
#include <algorithm>
#include <array>
#include <numeric>
#include <utility>

#include "pre_tokenizers_internal.h"

namespace prefopt::data::hf {

using nlohmann::json;
using namespace pretok;

namespace {

// ---- JSON fields --------------------------------------------------------------------------------------------------

const json& required(const json& j, const char* key, const JsonContext& ctx) {
  auto it = j.find(key);
  if (it == j.end()) ctx.fail(std::string("missing field \"") + key + "\"");
  return *it;
}

bool as_bool(const json& v, const JsonContext& ctx) {
  if (!v.is_boolean()) ctx.fail("expected a boolean, got " + std::string(v.type_name()));
  return v.get<bool>();
}

// An optional boolean field: `fallback` when absent, and when null if the Rust field is an Option.
bool optional_bool(const json& j, const char* key, const JsonContext& ctx, bool fallback, bool null_ok) {
  auto it = j.find(key);
  if (it == j.end() || (null_ok && it->is_null())) return fallback;
  return as_bool(*it, ctx.at(key));
}

// A Rust `char` field: a string of exactly one character.
std::string one_char(const json& j, const char* key, const JsonContext& ctx) {
  const json& v = required(j, key, ctx);
  if (!v.is_string()) ctx.at(key).fail("expected a one-character string, got " + std::string(v.type_name()));
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || !utf8::valid(s) || utf8::char_length(static_cast<unsigned char>(s[0])) != s.size())
    ctx.at(key).fail("expected a one-character string, got \"" + s + "\"");
  return s;
}

// ---- ByteLevel ----------------------------------------------------------------------------------------------------

// GPT-2's pattern; the Rust library compiles it with Oniguruma like any Split pattern.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct MappedByte {
  uint8_t length;
  char bytes[2];
};

const std::array<MappedByte, 256>& byte_map() {
  static const std::array<MappedByte, 256> table = [] {
    std::array<MappedByte, 256> t{};
    const auto& chars = utf8::byte_to_char();
    for (std::size_t b = 0; b < 256; ++b) {
      t[b].length = static_cast<uint8_t>(chars[b].size());
      for (std::size_t k = 0; k < chars[b].size(); ++k) t[b].bytes[k] = chars[b][k];
    }
    return t;
  }();
  return table;
}

class ByteLevel final : public Step {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), regex_(use_regex ? &gpt2_regex() : nullptr) {}

  void run(std::vector<Piece>& pieces, const Segment&) const override {
    Scratch& s = scratch();
    s.out.clear();
    s.out.reserve(pieces.size() * 8);
    for (Piece& piece : pieces) {
      if (piece.text.empty()) continue;
      // The Rust library prepends to every split, not only to the segment's first.
      if (add_prefix_space_ && piece.text[0] != ' ') {
        piece.text.insert(piece.text.begin(), ' ');
        if (!piece.origin.empty()) piece.origin.insert(piece.origin.begin(), piece.origin[0]);
      }
      if (regex_ == nullptr) {
        map(piece, 0, piece.text.size(), s.out);
        continue;
      }
      regex_spans(*regex_, piece.text, false, s.spans);
      for (const Span& span : s.spans)
        if (span.end > span.begin) map(piece, span.begin, span.end, s.out);
    }
    pieces.swap(s.out);
    s.out.clear();
  }

 private:
  static const OnigRegex& gpt2_regex() {
    static const OnigRegex regex = compile_onig(kGpt2Pattern, JsonContext{"ByteLevel"});
    return regex;
  }

  // Appends text[b, e) of `piece` with every byte replaced by its printable character; each of those characters
  // comes from (and maps back to) its byte.
  static void map(Piece& piece, std::size_t b, std::size_t e, std::vector<Piece>& out) {
    const auto& table = byte_map();
    const auto* text = reinterpret_cast<const unsigned char*>(piece.text.data());
    std::size_t size = 0;
    for (std::size_t k = b; k < e; ++k) size += table[text[k]].length;
    if (size == e - b) {  // printable ASCII only: nothing changes
      if (b == 0 && e == piece.text.size()) {
        out.push_back(std::move(piece));
      } else {
        out.push_back(sub_piece(piece, b, e));
      }
      return;
    }
    Piece& mapped = out.emplace_back();
    mapped.text.resize(size);
    char* dst = mapped.text.data();
    for (std::size_t k = b; k < e; ++k) {
      const MappedByte& m = table[text[k]];
      dst[0] = m.bytes[0];
      if (m.length == 2) dst[1] = m.bytes[1];
      dst += m.length;
    }
    if (piece.origin.empty()) return;
    mapped.origin.reserve(size + 1);
    for (std::size_t k = b; k < e; ++k)
      mapped.origin.insert(mapped.origin.end(), table[text[k]].length, piece.origin[k]);
    mapped.origin.push_back(end_origin(piece, b, e));
  }

  bool add_prefix_space_;
  const OnigRegex* regex_;  // GPT-2's split, when use_regex
};

// ---- Metaspace ----------------------------------------------------------------------------------------------------

enum class Prepend { Always, First, Never };

class Metaspace final : public Step {
 public:
  Metaspace(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}

  bool needs_start_origin() const override { return prepend_ == Prepend::First; }

  void run(std::vector<Piece>& pieces, const Segment& segment) const override {
    Scratch& s = scratch();
    s.out.clear();
    s.out.reserve(pieces.size() * 8);
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      Piece& piece = pieces[i];
      if (piece.text.empty()) continue;
      // "first" means: this split starts where the segment does, in the original text (offsets_original().0 == 0).
      bool prepend = prepend_ == Prepend::Always ||
                     (prepend_ == Prepend::First && segment.first &&
                      (piece.origin.empty() ? i == 0 : piece.origin[0] == segment.start));
      // A leading space becomes the replacement, and the Rust library only prepends before anything else.
      prepend = prepend && piece.text[0] != ' ' && piece.text.compare(0, replacement_.size(), replacement_) != 0;
      rewrite(piece, prepend);
      if (!split_) {
        s.out.push_back(std::move(piece));
        continue;
      }
      // Splitting on one character: every occurrence opens a piece (MergedWithNext).
      s.spans.clear();
      std::size_t begin = 0;
      for (std::size_t k = piece.text.find(replacement_, 1); k != std::string::npos;
           k = piece.text.find(replacement_, k + replacement_.size())) {
        s.spans.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(k), false});
        begin = k;
      }
      s.spans.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(piece.text.size()), false});
      emit(piece, s.spans, s.out);
    }
    pieces.swap(s.out);
    s.out.clear();
  }

 private:
  // Replaces every space by the replacement (its bytes take the space's origin) and prepends one if asked (its
  // bytes take the origin of the piece's start); leaves the piece alone when neither applies.
  void rewrite(Piece& piece, bool prepend) const {
    const std::size_t spaces = static_cast<std::size_t>(std::count(piece.text.begin(), piece.text.end(), ' '));
    if (spaces == 0 && !prepend) return;
    const std::size_t r = replacement_.size();
    const std::size_t size = piece.text.size() + spaces * (r - 1) + (prepend ? r : 0);
    const bool tracked = !piece.origin.empty();
    std::string text;
    std::vector<uint32_t> origin;
    text.reserve(size);
    if (tracked) origin.reserve(size + 1);
    if (prepend) {
      text += replacement_;
      if (tracked) origin.insert(origin.end(), r, piece.origin[0]);
    }
    for (std::size_t k = 0; k < piece.text.size(); ++k) {
      if (piece.text[k] == ' ') {
        text += replacement_;
        if (tracked) origin.insert(origin.end(), r, piece.origin[k]);
      } else {
        text += piece.text[k];
        if (tracked) origin.push_back(piece.origin[k]);
      }
    }
    if (tracked) {
      origin.push_back(piece.origin.back());
      piece.origin.swap(origin);
    }
    piece.text.swap(text);
  }

  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

// ---- the character-class splitters --------------------------------------------------------------------------------

// Splits on every character `is_delimiter` accepts, with `behavior` (Punctuation, Digits, WhitespaceSplit,
// CharDelimiterSplit).
template <class Predicate>
class CharSplit final : public Step {
 public:
  CharSplit(Predicate is_delimiter, Behavior behavior) : is_delimiter_(is_delimiter), behavior_(behavior) {}
  void run(std::vector<Piece>& pieces, const Segment&) const override {
    split_each(pieces, [&](std::string_view text, std::vector<Span>& spans) {
      char_spans(text, is_delimiter_, spans);
      apply_behavior(spans, behavior_);
    });
  }

 private:
  Predicate is_delimiter_;
  Behavior behavior_;
};

template <class Predicate>
std::unique_ptr<Step> char_split(Predicate is_delimiter, Behavior behavior) {
  return std::make_unique<CharSplit<Predicate>>(is_delimiter, behavior);
}

// BertPreTokenizer: whitespace removed, then every punctuation character isolated; done in one pass.
class Bert final : public Step {
 public:
  void run(std::vector<Piece>& pieces, const Segment&) const override {
    split_each(pieces, [](std::string_view text, std::vector<Span>& spans) {
      spans.clear();
      std::size_t word = std::string_view::npos;
      std::size_t i = 0;
      while (i < text.size()) {
        std::size_t length;
        const char32_t c = decode_at(text, i, &length);
        const bool space = is_whitespace(c);
        if (space || is_punctuation(c)) {
          if (word != std::string_view::npos) spans.push_back({uint32_t(word), uint32_t(i), false});
          word = std::string_view::npos;
          if (!space) spans.push_back({uint32_t(i), uint32_t(i + length), false});
        } else if (word == std::string_view::npos) {
          word = i;
        }
        i += length;
      }
      if (word != std::string_view::npos) spans.push_back({uint32_t(word), uint32_t(text.size()), false});
    });
  }
};

// Whitespace: the Rust regex crate's \w+|[^\w\s]+ (not Oniguruma: the Rust library compiles this one with `regex`).
class Whitespace final : public Step {
 public:
  Whitespace() {
    static const OnigRegex regex = [] {
      const auto pattern = [](bool added) {
        const std::string word = rust_word_class(added);
        return "[" + word + "]+|[^" + word + "\\p{White_Space}]+";
      };
      const JsonContext ctx{"Whitespace"};
      return OnigRegex(Regex(pattern(false), ctx), Regex(pattern(true), ctx));
    }();
    regex_ = &regex;
  }
  void run(std::vector<Piece>& pieces, const Segment&) const override {
    split_each(pieces, [&](std::string_view text, std::vector<Span>& spans) {
      regex_spans(*regex_, text, true, spans);
      apply_behavior(spans, Behavior::Removed);
    });
  }

 private:
  const OnigRegex* regex_;
};

// FixedLength: pieces of `length` characters.
class FixedLength final : public Step {
 public:
  explicit FixedLength(std::size_t length) : length_(length) {}
  void run(std::vector<Piece>& pieces, const Segment&) const override {
    split_each(pieces, [&](std::string_view text, std::vector<Span>& spans) {
      spans.clear();
      std::size_t begin = 0, chars = 0;
      for (std::size_t i = 0; i < text.size(); i += utf8::char_length(static_cast<unsigned char>(text[i]))) {
        if (chars++ == length_) {
          spans.push_back({uint32_t(begin), uint32_t(i), false});
          begin = i;
          chars = 1;
        }
      }
      spans.push_back({uint32_t(begin), uint32_t(text.size()), false});
    });
  }

 private:
  std::size_t length_;
};

// ---- Sequence and the factory -------------------------------------------------------------------------------------

class Pipeline final : public PreTokenizer {
 public:
  explicit Pipeline(std::vector<std::unique_ptr<Step>> steps) : steps_(std::move(steps)) {
    for (std::size_t i = 1; i < steps_.size(); ++i) needs_origin_ = needs_origin_ || steps_[i]->needs_start_origin();
  }

  void pre_tokenize(std::vector<Piece>& pieces, bool segment_is_first) const override {
    if (pieces.empty() || steps_.empty()) return;
    // Metaspace's "first" after an earlier split asks where each split starts in the original text: the pieces
    // carry origins relative to the segment while the steps run when the caller did not ask for them.
    const bool temporary = needs_origin_ && segment_is_first && pieces[0].origin.empty();
    if (temporary) {
      uint32_t at = 0;
      for (Piece& p : pieces) {
        p.origin.resize(p.text.size() + 1);
        std::iota(p.origin.begin(), p.origin.end(), at);
        at += static_cast<uint32_t>(p.text.size());
      }
    }
    const Segment segment{segment_is_first, pieces[0].origin.empty() ? 0 : pieces[0].origin[0]};
    for (const auto& step : steps_) step->run(pieces, segment);
    if (temporary)
      for (Piece& p : pieces) std::vector<uint32_t>().swap(p.origin);
  }

 private:
  std::vector<std::unique_ptr<Step>> steps_;
  bool needs_origin_ = false;
};

Prepend parse_prepend(const json& j, const JsonContext& ctx) {
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (s == "always") return Prepend::Always;
    if (s == "first") return Prepend::First;
    if (s == "never") return Prepend::Never;
    ctx.fail("unknown prepend_scheme \"" + s + "\" (expected first, never or always)");
  }
  ctx.fail("expected a string (first, never or always), got " + std::string(j.type_name()));
}

std::unique_ptr<Step> make_metaspace(const json& j, const JsonContext& ctx) {
  std::string replacement = one_char(j, "replacement", ctx);
  Prepend prepend = Prepend::Always;
  auto scheme = j.find("prepend_scheme");
  if (scheme != j.end()) prepend = parse_prepend(*scheme, ctx.at("prepend_scheme"));
  // Files written before prepend_scheme existed say add_prefix_space; false means "never" (the Rust library
  // rejects it unless prepend_scheme says never too; an old file that says only this is read as meant).
  if (!optional_bool(j, "add_prefix_space", ctx, true, true)) {
    if (scheme != j.end() && prepend != Prepend::Never)
      ctx.at("add_prefix_space").fail("add_prefix_space does not match declared prepend_scheme");
    prepend = Prepend::Never;
  }
  const bool split = optional_bool(j, "split", ctx, true, true);
  return std::make_unique<Metaspace>(std::move(replacement), prepend, split);
}

void add_steps(const json& j, const JsonContext& ctx, std::vector<std::unique_ptr<Step>>& steps) {
  if (!j.is_object()) ctx.fail("expected an object, got " + std::string(j.type_name()));
  const json& type_value = required(j, "type", ctx);
  if (!type_value.is_string()) ctx.at("type").fail("expected a string, got " + std::string(type_value.type_name()));
  const std::string& type = type_value.get_ref<const std::string&>();
  if (type == "Sequence") {
    const json& list = required(j, "pretokenizers", ctx);
    const JsonContext lctx = ctx.at("pretokenizers");
    if (!list.is_array()) lctx.fail("expected an array, got " + std::string(list.type_name()));
    for (std::size_t k = 0; k < list.size(); ++k) add_steps(list[k], lctx.at(k), steps);  // nested ones flatten
  } else if (type == "ByteLevel") {
    const bool add_prefix_space = as_bool(required(j, "add_prefix_space", ctx), ctx.at("add_prefix_space"));
    as_bool(required(j, "trim_offsets", ctx), ctx.at("trim_offsets"));  // the post-processor's business
    steps.push_back(std::make_unique<ByteLevel>(add_prefix_space, optional_bool(j, "use_regex", ctx, true, false)));
  } else if (type == "Metaspace") {
    steps.push_back(make_metaspace(j, ctx));
  } else if (type == "Split") {
    steps.push_back(make_split(j, ctx));
  } else if (type == "Whitespace") {
    steps.push_back(std::make_unique<Whitespace>());
  } else if (type == "WhitespaceSplit") {
    steps.push_back(char_split([](char32_t c) { return is_whitespace(c); }, Behavior::Removed));
  } else if (type == "BertPreTokenizer") {
    steps.push_back(std::make_unique<Bert>());
  } else if (type == "Punctuation") {
    auto it = j.find("behavior");
    const Behavior behavior = it == j.end() ? Behavior::Isolated : parse_behavior(*it, ctx.at("behavior"));
    steps.push_back(char_split([](char32_t c) { return is_punctuation(c); }, behavior));
  } else if (type == "Digits") {
    const bool individual = as_bool(required(j, "individual_digits", ctx), ctx.at("individual_digits"));
    steps.push_back(char_split([](char32_t c) { return is_numeric(c); },
                               individual ? Behavior::Isolated : Behavior::Contiguous));
  } else if (type == "CharDelimiterSplit") {
    std::size_t length;
    const char32_t delimiter = decode_at(one_char(j, "delimiter", ctx), 0, &length);
    steps.push_back(char_split([delimiter](char32_t c) { return c == delimiter; }, Behavior::Removed));
  } else if (type == "FixedLength") {
    std::size_t length = 5;
    auto it = j.find("length");
    if (it != j.end()) {
      if (!it->is_number_unsigned() || it->get<uint64_t>() == 0)
        ctx.at("length").fail("expected a positive integer, got " + it->dump());
      length = it->get<std::size_t>();
    }
    steps.push_back(std::make_unique<FixedLength>(length));
  } else if (type == "UnicodeScripts") {
    ctx.at("type").fail("the UnicodeScripts pre-tokenizer is not supported (it needs the Rust library's table of "
                        "scripts)");
  } else {
    ctx.at("type").fail("unknown pre-tokenizer type \"" + type +
                        "\" (expected BertPreTokenizer, ByteLevel, CharDelimiterSplit, Digits, FixedLength, "
                        "Metaspace, Punctuation, Sequence, Split, Whitespace or WhitespaceSplit)");
  }
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const JsonContext& ctx) {
  if (j.is_null()) return nullptr;
  std::vector<std::unique_ptr<Step>> steps;
  add_steps(j, ctx, steps);
  return std::make_unique<Pipeline>(std::move(steps));
}

}  // namespace prefopt::data::hf
