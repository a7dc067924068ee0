// The normalizers of tokenizer.json ("normalizer"), built from their JSON by make_normalizer, and the JSON field
// readers the decoders share. Each rewrites a Piece the way Hugging Face's Rust library rewrites a NormalizedString
// (same text, origins kept per the Piece contract). Never touches a piece that a normalizer leaves unchanged, and
// never accepts a JSON object the Rust library would reject for a missing or mistyped field it reads.
#include <utility>
#include <vector>

#include "normalizers_internal.h"

namespace prefopt::data::hf {

using nlohmann::json;

namespace detail {

std::string json_kind(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

const json& require_object(const json& j, const JsonContext& ctx) {
  if (!j.is_object()) ctx.fail("expected an object, got " + json_kind(j));
  return j;
}

std::string component_type(const json& j, const JsonContext& ctx) {
  require_object(j, ctx);
  auto it = j.find("type");
  if (it == j.end()) ctx.fail("missing field \"type\"");
  if (!it->is_string()) ctx.at("type").fail("expected a string, got " + json_kind(*it));
  return it->get<std::string>();
}

const json& required_field(const json& j, const char* key, const JsonContext& ctx) {
  auto it = j.find(key);
  if (it == j.end()) ctx.fail(std::string("missing field \"") + key + "\"");
  return *it;
}

bool bool_field(const json& j, const char* key, const JsonContext& ctx) {
  const json& v = required_field(j, key, ctx);
  if (!v.is_boolean()) ctx.at(key).fail("expected a boolean, got " + json_kind(v));
  return v.get<bool>();
}

std::string string_field(const json& j, const char* key, const JsonContext& ctx) {
  const json& v = required_field(j, key, ctx);
  if (!v.is_string()) ctx.at(key).fail("expected a string, got " + json_kind(v));
  return v.get<std::string>();
}

std::size_t size_field(const json& j, const char* key, const JsonContext& ctx) {
  const json& v = required_field(j, key, ctx);
  if (!v.is_number_unsigned()) {
    ctx.at(key).fail("expected a non-negative integer, got " + (v.is_number() ? v.dump() : json_kind(v)));
  }
  return v.get<std::size_t>();
}

bool optional_bool_field(const json& j, const char* key, bool fallback, const JsonContext& ctx) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) ctx.at(key).fail("expected a boolean or null, got " + json_kind(*it));
  return it->get<bool>();
}

std::string char_field(const json& j, const char* key, const JsonContext& ctx) {
  std::string s = string_field(j, key, ctx);
  if (s.empty() || utf8::char_length(static_cast<unsigned char>(s[0])) != s.size() || !utf8::valid(s)) {
    ctx.at(key).fail("expected a single character, got \"" + s + "\"");
  }
  return s;
}

void ReplacePattern::find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  out.clear();
  if (!regex_) {
    for (std::size_t at = text.find(literal_); at != std::string_view::npos; at = text.find(literal_, at)) {
      out.emplace_back(at, at + literal_.size());
      at += literal_.size();
    }
    return;
  }
  regex_->find_all(text, out);  // Oniguruma's find_iter rules for empty matches included
}

ReplacePattern replace_pattern(const json& j, const JsonContext& ctx) {
  const json& p = required_field(j, "pattern", ctx);
  const JsonContext pctx = ctx.at("pattern");
  if (!p.is_object() || p.size() != 1) pctx.fail("expected {\"String\": ...} or {\"Regex\": ...}");
  const std::string kind = p.begin().key();
  if (kind != "String" && kind != "Regex") pctx.fail("unknown pattern kind \"" + kind + "\", expected String or Regex");
  std::string value = string_field(p, kind.c_str(), pctx);
  if (kind == "Regex") return ReplacePattern({}, Regex(value, pctx.at(kind)));
  if (value.empty()) return ReplacePattern({}, Regex::literal(value, pctx.at(kind)));
  return ReplacePattern(std::move(value), std::nullopt);
}

}  // namespace detail

namespace {

using detail::Rewriter;
using detail::rewrite_chars;

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(detail::UnicodeForm form) : form_(form) {}
  void normalize(Piece& piece) const override { detail::normalize_unicode(piece, form_); }

 private:
  detail::UnicodeForm form_;
};

class Lowercase final : public Normalizer {
 public:
  void normalize(Piece& piece) const override { detail::lowercase(piece); }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(Piece& piece) const override {
    const std::string& s = piece.text;
    std::size_t begin = 0, end = s.size(), len;
    if (left_) {
      while (begin < end && detail::is_rust_whitespace(utf8::decode(s, begin, &len))) begin += len;
    }
    if (right_) {
      while (end > begin) {
        std::size_t k = end - 1;
        while (k > begin && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        if (!detail::is_rust_whitespace(utf8::decode(s, k, &len))) break;
        end = k;
      }
    }
    if (begin == 0 && end == s.size()) return;
    Rewriter rw(piece);
    rw.replace(0, begin, "");
    rw.keep(begin, end);
    rw.replace(end, s.size(), "");
    rw.finish();
  }

 private:
  bool left_, right_;
};

class StripAccents final : public Normalizer {
 public:
  void normalize(Piece& piece) const override {
    rewrite_chars(piece, [](char32_t cp, std::string&) { return cp < 0x300 || !detail::is_combining_mark(cp); });
  }
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(Piece& piece) const override {
    if (piece.text.empty() || prefix_.empty()) return;
    piece.text.insert(0, prefix_);
    // The prefix stands for the first character, as Rust's NormalizedString::prepend aligns it.
    if (!piece.origin.empty()) piece.origin.insert(piece.origin.begin(), prefix_.size(), piece.origin[0]);
  }

 private:
  std::string prefix_;
};

class Replace final : public Normalizer {
 public:
  Replace(detail::ReplacePattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(Piece& piece) const override {
    if (piece.text.empty()) return;  // Rust matches nothing in an empty string, even an empty pattern
    std::vector<std::pair<std::size_t, std::size_t>> matches;
    pattern_.find_all(piece.text, matches);
    if (matches.empty()) return;
    Rewriter rw(piece);
    std::size_t last = 0;
    for (const auto& [b, e] : matches) {
      rw.keep(last, b);
      rw.replace(b, e, content_);
      last = e;
    }
    rw.keep(last, piece.text.size());
    rw.finish();
  }

 private:
  detail::ReplacePattern pattern_;
  std::string content_;
};

bool is_chinese_char(char32_t cp) {
  // BERT's "CJK" blocks, exactly as tokenizers' bert.rs lists them (not the Unicode Ideographic property).
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text), chinese_(chinese), strip_accents_(strip_accents), lowercase_(lowercase) {}

  void normalize(Piece& piece) const override {
    // Rust runs clean_text, handle_chinese_chars, strip_accents (NFD, then dropping Mn) and lowercase in turn; the
    // first two map each character on its own, so they run fused in one pass.
    if (clean_text_ || chinese_) {
      rewrite_chars(piece, [this](char32_t cp, std::string& out) {
        if (clean_text_) {
          // Dropping comes first: U+000B, U+000C and U+0085 are controls as well as whitespace.
          const bool keeps_control = cp == '\t' || cp == '\n' || cp == '\r';
          if (cp == 0 || cp == 0xFFFD || (!keeps_control && detail::is_other_category(cp))) return false;
          if (keeps_control || (cp != ' ' && detail::is_rust_whitespace(cp))) {
            out.push_back(' ');
            return false;
          }
        }
        if (chinese_ && cp >= 0x3400 && is_chinese_char(cp)) {
          out.push_back(' ');
          utf8::append(out, cp);
          out.push_back(' ');
          return false;
        }
        return true;
      });
    }
    if (strip_accents_) {
      detail::normalize_unicode(piece, detail::UnicodeForm::NFD);
      rewrite_chars(piece, [](char32_t cp, std::string&) { return cp < 0x300 || !detail::is_nonspacing_mark(cp); });
    }
    if (lowercase_) detail::lowercase(piece);
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class Nmt final : public Normalizer {
 public:
  void normalize(Piece& piece) const override {
    rewrite_chars(piece, [](char32_t cp, std::string& out) {
      // tokenizers' unicode.rs do_nmt: drop some controls, turn some spaces and separators into ' '.
      if ((cp >= 0x01 && cp <= 0x08) || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F || cp == 0x8F ||
          cp == 0x9F) {
        return false;
      }
      if (cp == 0x09 || cp == 0x0A || cp == 0x0C || cp == 0x0D || cp == 0x1680 || (cp >= 0x200B && cp <= 0x200F) ||
          cp == 0x2028 || cp == 0x2029 || cp == 0x2581 || cp == 0xFEFF || cp == 0xFFFD) {
        out.push_back(' ');
        return false;
      }
      return true;
    });
  }
};

class ByteLevel final : public Normalizer {
 public:
  void normalize(Piece& piece) const override {
    // Each byte becomes GPT-2's printable character for it, aligned to that byte.
    const auto& table = utf8::byte_to_char();
    Rewriter rw(piece);
    for (std::size_t i = 0; i < piece.text.size(); ++i) {
      rw.replace(i, i + 1, table[static_cast<unsigned char>(piece.text[i])]);
    }
    rw.finish();
  }
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(Piece& piece) const override {
    for (const auto& step : steps_) step->normalize(piece);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

std::string decode_base64(const std::string& s, const JsonContext& ctx) {
  // Standard alphabet with padding, as Rust's base64 BASE64_STANDARD engine requires.
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (s.size() % 4 != 0) ctx.fail("invalid base64: length is not a multiple of 4");
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (std::size_t i = 0; i < s.size(); i += 4) {
    const bool last = i + 4 == s.size();
    int pad = 0;
    if (last && s[i + 3] == '=') pad = s[i + 2] == '=' ? 2 : 1;
    uint32_t group = 0;
    for (int k = 0; k < 4; ++k) {
      const int v = k >= 4 - pad ? 0 : value(s[i + k]);
      if (v < 0) ctx.fail("invalid base64 character at offset " + std::to_string(i + k));
      group = (group << 6) | static_cast<uint32_t>(v);
    }
    out.push_back(static_cast<char>(group >> 16));
    if (pad < 2) out.push_back(static_cast<char>((group >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(group & 0xFF));
  }
  return out;
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const JsonContext& ctx) {
  using detail::bool_field;
  if (j.is_null()) return nullptr;
  const std::string type = detail::component_type(j, ctx);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(detail::UnicodeForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(detail::UnicodeForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(detail::UnicodeForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(detail::UnicodeForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Nmt") return std::make_unique<Nmt>();
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "Strip") {
    const bool left = bool_field(j, "strip_left", ctx);
    return std::make_unique<Strip>(left, bool_field(j, "strip_right", ctx));
  }
  if (type == "Prepend") return std::make_unique<Prepend>(detail::string_field(j, "prepend", ctx));
  if (type == "Replace") {
    detail::ReplacePattern pattern = detail::replace_pattern(j, ctx);
    return std::make_unique<Replace>(std::move(pattern), detail::string_field(j, "content", ctx));
  }
  if (type == "BertNormalizer" || type == "Bert") {  // the Rust enum's own name is accepted too
    const bool clean = bool_field(j, "clean_text", ctx), chinese = bool_field(j, "handle_chinese_chars", ctx);
    const bool lower = bool_field(j, "lowercase", ctx);
    // strip_accents: null or absent means "as lowercase", as BERT's uncased models expect.
    const bool strip = detail::optional_bool_field(j, "strip_accents", lower, ctx);
    return std::make_unique<BertNormalizer>(clean, chinese, strip, lower);
  }
  if (type == "Sequence") {
    const json& list = detail::required_field(j, "normalizers", ctx);
    const JsonContext lctx = ctx.at("normalizers");
    if (!list.is_array()) lctx.fail("expected an array, got " + detail::json_kind(list));
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].is_null()) lctx.at(i).fail("expected a normalizer, got null");
      steps.push_back(make_normalizer(list[i], lctx.at(i)));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  if (type == "Precompiled") {
    const json& v = detail::required_field(j, "precompiled_charsmap", ctx);
    if (!v.is_string()) ctx.at("precompiled_charsmap").fail("expected a base64 string, got " + detail::json_kind(v));
    return detail::make_precompiled(decode_base64(v.get<std::string>(), ctx.at("precompiled_charsmap")),
                                    ctx.at("precompiled_charsmap"));
  }
  ctx.at("type").fail("unknown normalizer type \"" + type + "\"");
}

}  // namespace prefopt::data::hf
