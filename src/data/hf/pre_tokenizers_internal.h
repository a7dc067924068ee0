// What the pre-tokenizer files share: the steps a pre-tokenizer is made of, Hugging Face's split behaviours
// (normalizer.rs's NormalizedString::split), the Unicode character classes of the Rust crates its pre-tokenizers
// call, and the translation of Oniguruma patterns into PCRE2 ones. Never parses a pre-tokenizer's JSON
// (pre_tokenizers.cpp does) and never keeps state between calls beyond thread-local scratch buffers: every step is
// safe to run from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "components.h"
#include "regex.h"
#include "utf8.h"

namespace prefopt::data::hf::pretok {

/// The segment a step works on. Metaspace's prepend_scheme "first" applies, in the Rust library, to every split whose
/// original offset is 0 (NormalizedString::offsets_original), so a step needs to know whether the segment starts the
/// input and which origin its start has.
struct Segment {
  bool first = false;
  uint32_t start = 0;  // origin of the segment's first byte, when origins are tracked
};

/// One pre-tokenizer of tokenizer.json other than Sequence (a Sequence is a list of steps).
class Step {
 public:
  virtual ~Step() = default;
  /// Rewrites `pieces` (the splits so far, in order) into the next splits; drops the empty ones.
  virtual void run(std::vector<Piece>& pieces, const Segment& segment) const = 0;
  /// True for Metaspace with prepend_scheme "first": it must see real origins once an earlier step has split.
  virtual bool needs_start_origin() const { return false; }
};

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

/// A byte range of a piece, flagged as a match of the splitting pattern (Rust's find_matches output).
struct Span {
  uint32_t begin;
  uint32_t end;
  bool match;
};

/// Whether `text` holds a character Unicode 15.0 to 16.0 added (or U+1171E, which 16.0 recategorised): one PCRE2
/// 10.42 does not class as Oniguruma does.
bool has_added_since_14(std::string_view text);

/// A tokenizer.json pattern compiled for PCRE2, twice when the characters of has_added_since_14 need their own
/// class items: PCRE2 tries a class's items in turn, so the form without them matches about twice as fast and serves
/// every text free of such characters, which is nearly every text.
class OnigRegex {
 public:
  explicit OnigRegex(Regex regex) : common_(std::move(regex)) {}
  OnigRegex(Regex common, Regex full) : common_(std::move(common)), full_(std::make_unique<Regex>(std::move(full))) {}
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
    (full_ != nullptr && has_added_since_14(text) ? *full_ : common_).find_all(text, out);
  }

 private:
  Regex common_;
  std::unique_ptr<Regex> full_;
};

/// Rust's find_matches for a regex: the matches of `regex` in `text` and the gaps between them, covering `text`
/// (a single non-match for an empty text), with the flags flipped when `invert`.
void regex_spans(const OnigRegex& regex, std::string_view text, bool invert, std::vector<Span>& spans);

/// Rust's find_matches for a char predicate: every character for which `is_delimiter` holds is a match of its own.
template <class Predicate>
void char_spans(std::string_view text, Predicate is_delimiter, std::vector<Span>& spans);

/// Rust's NormalizedString::split after find_matches: rewrites `spans` into the ranges to keep, in order.
void apply_behavior(std::vector<Span>& spans, Behavior behavior);

/// Where text[a, b) of `piece` ends in the original text (origins tracked, a < b): origin[b], unless the characters
/// from b on come from the same input byte as the range's last character (text a step inserted, or one character a
/// normalizer expanded). The Rust library aligns such characters to the whole of their source character, so the
/// range then reaches the end of that character, as its offsets do.
inline uint32_t end_origin(const Piece& piece, std::size_t a, std::size_t b) {
  std::size_t last = b - 1;
  while (last > a && (static_cast<unsigned char>(piece.text[last]) & 0xC0) == 0x80) --last;
  const uint32_t source = piece.origin[last];
  const auto continues = [&](std::size_t k) { return (static_cast<unsigned char>(piece.text[k]) & 0xC0) == 0x80; };
  while (b < piece.text.size() && (piece.origin[b] == source || continues(b))) ++b;
  return piece.origin[b];
}

/// text[a, b) of `piece` (a < b) as a piece of its own, its origin ending per end_origin.
Piece sub_piece(const Piece& piece, std::size_t a, std::size_t b);

/// Appends to `out` the non-empty ranges `kept` of `piece`, moving `piece` itself when one range covers it whole.
void emit(Piece& piece, const std::vector<Span>& kept, std::vector<Piece>& out);

/// Per-thread buffers of the steps, kept between calls so that splitting allocates only the new pieces.
struct Scratch {
  std::vector<Span> spans;
  std::vector<Piece> out;
};
Scratch& scratch();

/// Replaces every piece by the ranges `kept_spans(text, spans)` leaves in `spans` (the Rust library's
/// PreTokenizedString::split with a split function that only slices).
template <class KeptSpans>
void split_each(std::vector<Piece>& pieces, KeptSpans kept_spans) {
  Scratch& s = scratch();
  s.out.clear();
  s.out.reserve(pieces.size() * 4);
  for (Piece& piece : pieces) {
    kept_spans(std::string_view(piece.text), s.spans);
    emit(piece, s.spans, s.out);
  }
  pieces.swap(s.out);
  s.out.clear();
}

/// Reads a SplitDelimiterBehavior ("Removed", "Isolated", ...), failing with its JSON path otherwise.
Behavior parse_behavior(const nlohmann::json& j, const JsonContext& ctx);

/// The Split pre-tokenizer from its JSON object (pattern, behavior, invert).
std::unique_ptr<Step> make_split(const nlohmann::json& j, const JsonContext& ctx);

// ---- Unicode, as the Rust crates behind the pre-tokenizers see it (pre_tokenizers_unicode.cpp) ----------------

/// The code point at text[i] (valid UTF-8) and its length; ASCII without a call.
inline char32_t decode_at(std::string_view text, std::size_t i, std::size_t* length) {
  const auto lead = static_cast<unsigned char>(text[i]);
  if (lead < 0x80) {
    *length = 1;
    return lead;
  }
  return utf8::decode(text, i, length);
}

/// Rust's char::is_whitespace (the White_Space property).
bool is_whitespace(char32_t c);
/// Rust's char::is_numeric (general category N, Unicode 17 as in the Rust standard library behind tokenizers 0.23).
bool is_numeric(char32_t c);
/// char::is_ascii_punctuation or unicode_categories' is_punctuation (general category P as of Unicode 8), the
/// punctuation of the Punctuation and BertPreTokenizer pre-tokenizers.
bool is_punctuation(char32_t c);

/// `pattern`, an Oniguruma (Ruby syntax) pattern as tokenizer.json files hold them, rewritten so that PCRE2 matches
/// what Oniguruma matches: ^ and $ anchor at lines, \s \d \w \h \p{..} and POSIX brackets mean Oniguruma's classes,
/// \uHHHH and {,n} are spelled the PCRE2 way. With `added`, classes also hold the characters of has_added_since_14
/// that are theirs; without, the pattern is exact only on texts free of those.
std::string onig_to_pcre2(std::string_view pattern, bool added);
/// The regex of an Oniguruma pattern; an invalid one fails through ctx naming the pattern as the file has it.
OnigRegex compile_onig(std::string_view pattern, const JsonContext& ctx);
/// The PCRE2 class body of the Rust regex crate's \w (Alphabetic, M, Nd, Pc, Join_Control), for Whitespace; `added`
/// as for onig_to_pcre2.
std::string rust_word_class(bool added);

// ---- template definitions ---------------------------------------------------------------------------------------

template <class Predicate>
void char_spans(std::string_view text, Predicate is_delimiter, std::vector<Span>& spans) {
  spans.clear();
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return;
  }
  uint32_t last = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t length;
    const char32_t c = decode_at(text, i, &length);
    if (is_delimiter(c)) {
      if (last < i) spans.push_back({last, static_cast<uint32_t>(i), false});
      spans.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(i + length), true});
      last = static_cast<uint32_t>(i + length);
    }
    i += length;
  }
  if (last < text.size()) spans.push_back({last, static_cast<uint32_t>(text.size()), false});
}

}  // namespace prefopt::data::hf::pretok
