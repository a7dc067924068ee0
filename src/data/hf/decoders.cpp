// The decoders of tokenizer.json ("decoder"), built from their JSON by make_decoder: each rewrites the token strings
// of an id sequence as Hugging Face's Rust decode_chain does, the caller concatenating the result. Never fails on
// token content (bytes that are not UTF-8 become U+FFFD exactly where Rust puts them) and never panics where Rust
// would: see Strip.
#include <utility>
#include <vector>

#include "normalizers_internal.h"

namespace prefopt::data::hf {

using nlohmann::json;

namespace {

// Rust's str::replace: every non-overlapping occurrence, left to right; an empty `from` matches before every
// character and at the end.
std::string rust_replace(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  if (from.empty()) {
    out.reserve(s.size() + (s.size() + 1) * to.size());
    for (std::size_t i = 0; i < s.size(); i += utf8::char_length(static_cast<unsigned char>(s[i]))) {
      out += to;
      out.append(s, i, utf8::char_length(static_cast<unsigned char>(s[i])));
    }
    out += to;
    return out;
  }
  std::size_t last = 0, hit;
  while ((hit = s.find(from, last)) != std::string::npos) {
    out.append(s, last, hit - last);
    out += to;
    last = hit + from.size();
  }
  if (last == 0) return s;
  out.append(s, last, std::string::npos);
  return out;
}

void replace_in_place(std::string& s, const std::string& from, const std::string& to) {
  if (!from.empty() && s.find(from) == std::string::npos) return;
  s = rust_replace(s, from, to);
}

class ByteLevel final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    // All tokens' bytes are joined before the lossy UTF-8 conversion, so a character split across tokens survives.
    // A token with a character outside GPT-2's table contributes its own UTF-8 bytes unchanged.
    std::string bytes;
    for (const std::string& t : tokens) {
      const std::size_t mark = bytes.size();
      bool mapped = true;
      for (std::size_t i = 0, len; i < t.size(); i += len) {
        const int b = utf8::char_to_byte(utf8::decode(t, i, &len));
        if (b < 0) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!mapped) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, utf8::valid(bytes) ? std::move(bytes) : utf8::lossy(bytes));
  }
};

class Metaspace final : public Decoder {
 public:
  Metaspace(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    // Every replacement character of the first token is dropped (not only a leading one) unless the scheme is
    // "never", as tokenizers' metaspace.rs does.
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      replace_in_place(tokens[i], replacement_, i == 0 && strip_first_ ? "" : " ");
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

// "<0xAB>": the byte, or -1. u8::from_str_radix accepts a leading '+', so "<0x+F>" is byte 0x0F.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  const auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') return hex(t[4]);
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class ByteFallback final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    // A run of byte tokens becomes one string when it is valid UTF-8, else one U+FFFD per byte (not Rust's
    // from_utf8_lossy: the crate does it this way).
    const auto flush = [&] {
      if (pending.empty()) return;
      if (utf8::valid(pending)) {
        out.push_back(std::move(pending));
      } else {
        out.insert(out.end(), pending.size(), "\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      const int b = byte_token(t);
      if (b >= 0) {
        pending.push_back(static_cast<char>(b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class Fuse final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class Strip final : public Decoder {
 public:
  Strip(std::string content, std::size_t start, std::size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    // Up to start_ leading and stop_ trailing `content` characters come off each token. Where Rust panics (stop_
    // reaching past the token's start, or both ends cutting the same character) this clamps instead.
    for (std::string& t : tokens) {
      std::size_t begin = 0, end = t.size();
      for (std::size_t k = 0; k < start_ && t.compare(begin, content_.size(), content_) == 0; ++k) {
        begin += content_.size();
      }
      for (std::size_t k = 0; k < stop_ && end >= content_.size() &&
                              t.compare(end - content_.size(), content_.size(), content_) == 0;
           ++k) {
        end -= content_.size();
      }
      if (end < begin) end = begin;
      if (begin > 0 || end < t.size()) t = t.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  std::size_t start_, stop_;
};

class Replace final : public Decoder {
 public:
  Replace(detail::ReplacePattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::pair<std::size_t, std::size_t>> matches;
    for (std::string& t : tokens) {
      if (t.empty()) continue;  // Rust finds no match in an empty token
      pattern_.find_all(t, matches);
      if (matches.empty()) continue;
      std::string out;
      std::size_t last = 0;
      for (const auto& [b, e] : matches) {
        out.append(t, last, b - last);
        out += content_;
        last = e;
      }
      out.append(t, last, std::string::npos);
      t.swap(out);
    }
  }

 private:
  detail::ReplacePattern pattern_;
  std::string content_;
};

// tokenizers' wordpiece::cleanup, shared with CTC: these replacements, in this order.
void wordpiece_cleanup(std::string& s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},           {" ' ", "'"},   {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) replace_in_place(s, from, to);
}

class WordPiece final : public Decoder {
 public:
  WordPiece(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) {
          t.erase(0, prefix_.size());
        } else {
          t.insert(0, 1, ' ');
        }
      }
      if (cleanup_) wordpiece_cleanup(t);
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BPEDecoder final : public Decoder {
 public:
  explicit BPEDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    // The suffix ends a word: a space between words, nothing after the last token.
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      replace_in_place(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
    }
  }

 private:
  std::string suffix_;
};

class CTC final : public Decoder {
 public:
  CTC(std::string pad, std::string delimiter, bool cleanup)
      : pad_(std::move(pad)), delimiter_(std::move(delimiter)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0 && tokens[i] == tokens[i - 1]) continue;  // repeats collapse before anything else
      std::string t = rust_replace(tokens[i], pad_, "");
      if (cleanup_) {
        wordpiece_cleanup(t);
        replace_in_place(t, delimiter_, " ");
      }
      if (!t.empty()) out.push_back(std::move(t));
    }
    tokens.swap(out);
  }

 private:
  std::string pad_, delimiter_;
  bool cleanup_;
};

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

std::unique_ptr<Decoder> make_metaspace(const json& j, const JsonContext& ctx) {
  std::string replacement = detail::char_field(j, "replacement", ctx);
  std::string scheme = "always";
  if (auto it = j.find("prepend_scheme"); it != j.end()) {
    if (!it->is_string()) ctx.at("prepend_scheme").fail("expected a string, got " + detail::json_kind(*it));
    scheme = it->get<std::string>();
    if (scheme != "first" && scheme != "never" && scheme != "always") {
      ctx.at("prepend_scheme").fail("unknown prepend_scheme \"" + scheme + "\", expected first, never or always");
    }
  }
  // The legacy add_prefix_space: false must agree with the scheme (which then defaults to "always", so it fails).
  if (!detail::optional_bool_field(j, "add_prefix_space", true, ctx)) {
    if (scheme != "never") ctx.at("add_prefix_space").fail("add_prefix_space does not match declared prepend_scheme");
  }
  detail::optional_bool_field(j, "split", true, ctx);  // checked only: decoding does not split
  if (auto it = j.find("str_rep"); it != j.end() && !it->is_null() && !it->is_string()) {
    ctx.at("str_rep").fail("expected a string or null, got " + detail::json_kind(*it));
  }
  return std::make_unique<Metaspace>(std::move(replacement), scheme != "never");
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const JsonContext& ctx) {
  using detail::bool_field;
  using detail::string_field;
  if (j.is_null()) return nullptr;
  const std::string type = detail::component_type(j, ctx);
  if (type == "ByteLevel") {
    // The pre-tokenizer's fields, required by Rust's shared struct though decoding reads none of them.
    bool_field(j, "add_prefix_space", ctx);
    bool_field(j, "trim_offsets", ctx);
    if (auto it = j.find("use_regex"); it != j.end() && !it->is_boolean()) {
      ctx.at("use_regex").fail("expected a boolean, got " + detail::json_kind(*it));
    }
    return std::make_unique<ByteLevel>();
  }
  if (type == "Metaspace") return make_metaspace(j, ctx);
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    std::string content = detail::char_field(j, "content", ctx);
    const std::size_t start = detail::size_field(j, "start", ctx), stop = detail::size_field(j, "stop", ctx);
    return std::make_unique<Strip>(std::move(content), start, stop);
  }
  if (type == "Replace") {
    detail::ReplacePattern pattern = detail::replace_pattern(j, ctx);
    return std::make_unique<Replace>(std::move(pattern), string_field(j, "content", ctx));
  }
  if (type == "WordPiece") {
    std::string prefix = string_field(j, "prefix", ctx);
    return std::make_unique<WordPiece>(std::move(prefix), bool_field(j, "cleanup", ctx));
  }
  if (type == "BPEDecoder") return std::make_unique<BPEDecoder>(string_field(j, "suffix", ctx));
  if (type == "CTC") {
    std::string pad = string_field(j, "pad_token", ctx), delimiter = string_field(j, "word_delimiter_token", ctx);
    return std::make_unique<CTC>(std::move(pad), std::move(delimiter), bool_field(j, "cleanup", ctx));
  }
  if (type == "Sequence") {
    const json& list = detail::required_field(j, "decoders", ctx);
    const JsonContext lctx = ctx.at("decoders");
    if (!list.is_array()) lctx.fail("expected an array, got " + detail::json_kind(list));
    std::vector<std::unique_ptr<Decoder>> steps;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].is_null()) lctx.at(i).fail("expected a decoder, got null");
      steps.push_back(make_decoder(list[i], lctx.at(i)));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  ctx.at("type").fail("unknown decoder type \"" + type + "\"");
}

}  // namespace prefopt::data::hf
