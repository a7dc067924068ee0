// What the normalizer and decoder files share: Rewriter, which rebuilds a Piece's text and origin but leaves an
// unchanged piece untouched (no allocation until the first change); the Unicode operations behind the normalizers,
// with the character classes of the Rust crates Hugging Face's tokenizers uses; the readers of tokenizer.json fields
// and Replace's pattern. Never changes text outside the byte ranges handed to it, and never reads JSON past the
// object it is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "components.h"
#include "regex.h"
#include "utf8.h"

namespace prefopt::data::hf::detail {

/// Rebuilds `piece` from left to right out of kept input ranges and replacements. Every input byte must be
/// covered once, in order, by keep() or replace(). An output byte that was kept keeps its origin; every byte of
/// a replacement gets the origin of the first input byte it replaces; the end entry becomes the origin of the
/// input position just after the last range that produced output, so removed trailing text is not covered.
class Rewriter {
 public:
  explicit Rewriter(Piece& piece) : piece_(piece), tracked_(!piece.origin.empty()) {}
  Rewriter(const Rewriter&) = delete;
  Rewriter& operator=(const Rewriter&) = delete;

  void keep(std::size_t begin, std::size_t end) {
    if (begin == end) return;
    if (started_) {
      text_.append(piece_.text, begin, end - begin);
      if (tracked_) origin_.insert(origin_.end(), piece_.origin.begin() + begin, piece_.origin.begin() + end);
    }
    last_end_ = end;
  }

  void replace(std::size_t begin, std::size_t end, std::string_view with) {
    // A replacement equal to what it replaces is kept: its bytes keep their own origins.
    if (std::string_view(piece_.text).substr(begin, end - begin) == with) return keep(begin, end);
    if (!started_) start(begin, with.size());
    text_.append(with);
    if (tracked_) origin_.insert(origin_.end(), with.size(), piece_.origin[begin]);
    if (!with.empty()) last_end_ = end;
  }

  /// Installs the new text and origin (nothing to do when no replacement changed anything).
  void finish() {
    if (!started_) return;
    if (tracked_) {
      origin_.push_back(piece_.origin[last_end_]);
      piece_.origin.swap(origin_);
    }
    piece_.text.swap(text_);
  }

 private:
  void start(std::size_t kept, std::size_t extra) {
    started_ = true;
    text_.reserve(piece_.text.size() + extra + 8);
    text_.append(piece_.text, 0, kept);
    if (tracked_) {
      origin_.reserve(piece_.text.size() + extra + 9);
      origin_.assign(piece_.origin.begin(), piece_.origin.begin() + kept);
    }
  }

  Piece& piece_;
  bool tracked_;
  bool started_ = false;
  std::size_t last_end_ = 0;
  std::string text_;
  std::vector<uint32_t> origin_;
};

/// Rewrites `piece` one character at a time from byte `from` on (a character boundary): `map(cp, out)` returns
/// true to keep the character as it is, or appends its replacement (possibly nothing) to `out` and returns false.
template <class Map>
void rewrite_chars(Piece& piece, Map&& map, std::size_t from = 0);

enum class UnicodeForm { NFC, NFD, NFKC, NFKD };

/// Normalizes `piece` to `form` as the Rust crate unicode-normalization-alignments does: the text equals the
/// whole-string normalization; origins are tracked per segment between stable boundaries.
void normalize_unicode(Piece& piece, UnicodeForm form);

/// Rust's char::to_lowercase (full mapping, e.g. U+0130 -> "i\u0307") for the whole piece.
void lowercase(Piece& piece);

/// Rust's char::is_whitespace (the White_Space property).
bool is_rust_whitespace(char32_t cp);
/// True for the characters that utf8proc normalizes but the Rust crate's tables treat as unassigned: they stay as
/// they are, with combining class 0, and compose with nothing (`compat`: for NFKC and NFKD).
bool is_inert_for_rust(char32_t cp, bool compat);
/// The lowercase of `cp` where Rust's std maps it and utf8proc does not (newer Unicode), else 0.
char32_t lowercase_extra(char32_t cp);
/// General category Cc, Cf or Co, as the unicode_categories crate's is_other() (Bert's control test).
bool is_other_category(char32_t cp);
/// General category Mn, as unicode_categories' is_mark_nonspacing() (Bert's strip_accents).
bool is_nonspacing_mark(char32_t cp);
/// General category Mn, Mc or Me, as unicode-normalization-alignments' is_combining_mark() (StripAccents).
bool is_combining_mark(char32_t cp);

/// SentencePiece's precompiled charsmap normalizer, from the decoded bytes of "precompiled_charsmap".
std::unique_ptr<Normalizer> make_precompiled(std::string charsmap, const JsonContext& ctx);

// ---- tokenizer.json fields, with errors naming their JSON path --------------------------------------------------

/// The JSON kind `j` holds, in words ("a string", "null", ...), for error messages.
std::string json_kind(const nlohmann::json& j);
/// `j` itself when it is an object; otherwise ctx.fail.
const nlohmann::json& require_object(const nlohmann::json& j, const JsonContext& ctx);
/// The "type" string of a component object.
std::string component_type(const nlohmann::json& j, const JsonContext& ctx);
/// j[key], which must be present (null counts as present: the typed getters reject it).
const nlohmann::json& required_field(const nlohmann::json& j, const char* key, const JsonContext& ctx);
bool bool_field(const nlohmann::json& j, const char* key, const JsonContext& ctx);
std::string string_field(const nlohmann::json& j, const char* key, const JsonContext& ctx);
std::size_t size_field(const nlohmann::json& j, const char* key, const JsonContext& ctx);
/// Absent or null: `fallback`.
bool optional_bool_field(const nlohmann::json& j, const char* key, bool fallback, const JsonContext& ctx);
/// A string field holding exactly one character (Rust's `char` fields), as its UTF-8.
std::string char_field(const nlohmann::json& j, const char* key, const JsonContext& ctx);

/// Replace's "pattern" ({"String": literal} or {"Regex": pattern}), finding matches as the Rust library's
/// Oniguruma find_iter does. A non-empty literal is searched without the regex engine.
class ReplacePattern {
 public:
  ReplacePattern(std::string literal, std::optional<Regex> regex)
      : literal_(std::move(literal)), regex_(std::move(regex)) {}
  /// Every match in `text`, left to right. Callers skip empty text: the Rust library matches nothing there.
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const;

 private:
  std::string literal_;         // used when regex_ is empty
  std::optional<Regex> regex_;  // a regex, or the empty literal (which matches at every character boundary)
};

ReplacePattern replace_pattern(const nlohmann::json& j, const JsonContext& ctx);

// ---- template definitions ----------------------------------------------------------------------------------

template <class Map>
void rewrite_chars(Piece& piece, Map&& map, std::size_t from) {
  Rewriter rw(piece);
  rw.keep(0, from);
  std::string repl;
  const std::string& s = piece.text;
  std::size_t i = from;
  while (i < s.size()) {
    std::size_t len;
    const char32_t cp = utf8::decode(s, i, &len);
    repl.clear();
    if (map(cp, repl)) {
      rw.keep(i, i + len);
    } else {
      rw.replace(i, i + len, repl);
    }
    i += len;
  }
  rw.finish();
}

}  // namespace prefopt::data::hf::detail
