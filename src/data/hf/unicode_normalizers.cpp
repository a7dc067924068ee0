// The Unicode side of the normalizers: NFC/NFD/NFKC/NFKD and lowercasing through utf8proc, segment by segment so
// that origins stay fine-grained, and the character classes of the Rust crates behind Hugging Face's tokenizers.
// Never normalizes across a stable boundary (so the text always equals whole-string normalization) and never
// allocates for text that no form can change (ASCII).
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <vector>

#include "normalizers_internal.h"

namespace prefopt::data::hf::detail {

namespace {

const utf8proc_property_t& props(char32_t cp) { return *utf8proc_get_property(static_cast<utf8proc_int32_t>(cp)); }

bool has_decomposition(const utf8proc_property_t& p, bool compat) {
  return p.decomp_seqindex != UINT16_MAX && (compat || p.decomp_type == 0);
}

bool is_hangul_syllable(char32_t cp) { return cp >= 0xAC00 && cp <= 0xD7A3; }

// A character starts a stable segment when normalizing the text before it and the text from it on separately
// gives the whole text's normalization: the first character of its full decomposition is a starter (so canonical
// reordering cannot cross it) that never composes with a preceding character (so composition cannot either).
// Most of that is "combining class 0"; the exceptions, which differ for the canonical and compatibility forms, are
// collected once from utf8proc's own data.
class Boundaries {
 public:
  Boundaries() {
    // Composition seconds with combining class 0 (Hangul vowels and trailing consonants, some Indic vowel
    // signs): the last character of every canonical decomposition, and the conjoining jamo utf8proc composes
    // algorithmically. Taking excluded compositions too only makes some segments longer, never wrong.
    std::vector<char32_t> seconds;
    for (char32_t cp = 0x1161; cp <= 0x1175; ++cp) seconds.push_back(cp);
    for (char32_t cp = 0x11A8; cp <= 0x11C2; ++cp) seconds.push_back(cp);
    std::array<utf8proc_int32_t, 32> d{};
    const auto decompose = [&](char32_t cp, bool compat) {
      const utf8proc_option_t o = static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0));
      return utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), d.data(), d.size(), o, nullptr);
    };
    std::vector<char32_t> starters;  // combining class 0, with a decomposition
    for (char32_t cp = 0x80; cp <= 0x10FFFF; ++cp) {
      if (cp == 0xD800) cp = 0xE000;
      const utf8proc_property_t& p = props(cp);
      if (!has_decomposition(p, true)) continue;
      if (p.combining_class == 0) starters.push_back(cp);
      if (!has_decomposition(p, false)) continue;
      const auto n = decompose(cp, false);
      if (n >= 2 && props(static_cast<char32_t>(d[n - 1])).combining_class == 0) seconds.push_back(d[n - 1]);
    }
    std::sort(seconds.begin(), seconds.end());
    seconds.erase(std::unique(seconds.begin(), seconds.end()), seconds.end());
    const auto is_second = [&](char32_t cp) { return std::binary_search(seconds.begin(), seconds.end(), cp); };
    // A second is its own first character (seconds never decompose); a decomposing starter is no boundary when
    // its decomposition starts with a non-starter or a second.
    canonical_ = compat_ = seconds;
    for (const char32_t cp : starters) {
      const utf8proc_property_t& p = props(cp);
      for (const bool compat : {false, true}) {
        if (!has_decomposition(p, compat)) continue;
        decompose(cp, compat);
        const auto first = static_cast<char32_t>(d[0]);
        if (props(first).combining_class != 0 || is_second(first)) (compat ? compat_ : canonical_).push_back(cp);
      }
    }
    std::sort(canonical_.begin(), canonical_.end());
    std::sort(compat_.begin(), compat_.end());
  }

  bool is_boundary(char32_t cp, bool compat) const {
    if (cp < 0x80 || is_inert_for_rust(cp, compat)) return true;
    if (props(cp).combining_class != 0) return false;
    const std::vector<char32_t>& extra = compat ? compat_ : canonical_;
    return !std::binary_search(extra.begin(), extra.end(), cp);
  }

 private:
  std::vector<char32_t> canonical_, compat_;  // sorted: starters that start no stable segment
};

const Boundaries& boundaries() {
  static const Boundaries b;
  return b;
}

}  // namespace

void normalize_unicode(Piece& piece, UnicodeForm form) {
  const std::string& s = piece.text;
  std::size_t first = 0;
  while (first < s.size() && static_cast<unsigned char>(s[first]) < 0x80) ++first;
  if (first == s.size()) return;  // ASCII is invariant under every form
  const bool compat = form == UnicodeForm::NFKC || form == UnicodeForm::NFKD;
  const bool compose = form == UnicodeForm::NFC || form == UnicodeForm::NFKC;
  const auto options = static_cast<utf8proc_option_t>(
      UTF8PROC_STABLE | (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) | (compat ? UTF8PROC_COMPAT : 0));
  const Boundaries& bounds = boundaries();

  Rewriter rw(piece);
  std::size_t b = first > 0 ? first - 1 : 0;  // a combining mark may attach to the ASCII character before it
  rw.keep(0, b);
  std::vector<utf8proc_int32_t> buffer;
  std::string out;
  while (b < s.size()) {
    std::size_t len;
    const char32_t cp = utf8::decode(s, b, &len);
    std::size_t e = b + len;
    bool single = true;
    while (e < s.size()) {
      const char32_t next = utf8::decode(s, e, &len);
      if (bounds.is_boundary(next, compat)) break;
      e += len;
      single = false;
    }
    if (single && (cp < 0x80 || (!has_decomposition(props(cp), compat) && !is_hangul_syllable(cp)))) {
      rw.keep(b, e);  // a lone character without decomposition is its own normalization
      b = e;
      continue;
    }
    if (is_inert_for_rust(cp, compat)) {
      // Stays as it is, and composes with nothing: what follows it is normalized on its own.
      rw.keep(b, b + utf8::char_length(static_cast<unsigned char>(s[b])));
      b += utf8::char_length(static_cast<unsigned char>(s[b]));
      if (b == e) continue;
    }
    if (buffer.size() < 4 * (e - b) + 8) buffer.resize(4 * (e - b) + 8);
    const auto* in = reinterpret_cast<const utf8proc_uint8_t*>(s.data() + b);
    auto n = utf8proc_decompose(in, static_cast<utf8proc_ssize_t>(e - b), buffer.data(),
                                static_cast<utf8proc_ssize_t>(buffer.size()), options);
    if (n > static_cast<utf8proc_ssize_t>(buffer.size())) {
      buffer.resize(static_cast<std::size_t>(n));
      n = utf8proc_decompose(in, static_cast<utf8proc_ssize_t>(e - b), buffer.data(), n, options);
    }
    if (n < 0) throw FormatError(std::string("utf8proc: ") + utf8proc_errmsg(n));
    n = utf8proc_normalize_utf32(buffer.data(), n, options);
    out.clear();
    for (utf8proc_ssize_t k = 0; k < n; ++k) utf8::append(out, static_cast<char32_t>(buffer[k]));
    rw.replace(b, e, out);
    b = e;
  }
  rw.finish();
}

namespace {

// Rust's char::to_lowercase for a character outside ASCII, appended to `out`; false when it is its own lowercase.
bool append_lowercase(char32_t cp, std::string& out) {
  if (cp == 0x130) {  // the one unconditional multi-character lowercase mapping (SpecialCasing.txt)
    out += "i\xCC\x87";
    return true;
  }
  char32_t lower = lowercase_extra(cp);
  if (lower == 0) lower = static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
  if (lower == cp) return false;
  utf8::append(out, lower);
  return true;
}

}  // namespace

void lowercase(Piece& piece) {
  // In place while every change keeps the byte length (nearly always); a rebuild from the first one that does not.
  std::string& s = piece.text;
  const bool tracked = !piece.origin.empty();
  std::string lower;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c >= 'A' && c <= 'Z') s[i] = static_cast<char>(c + 32);
      ++i;
      continue;
    }
    std::size_t len;
    const char32_t cp = utf8::decode(s, i, &len);
    lower.clear();
    if (!append_lowercase(cp, lower)) {
      i += len;
      continue;
    }
    if (lower.size() != len) break;
    s.replace(i, len, lower);
    if (tracked) std::fill(piece.origin.begin() + i + 1, piece.origin.begin() + i + len, piece.origin[i]);
    i += len;
  }
  if (i == s.size()) return;
  rewrite_chars(
      piece,
      [](char32_t cp, std::string& out) {
        if (cp < 0x80) {
          if (cp < 'A' || cp > 'Z') return true;
          out.push_back(static_cast<char>(cp + 32));
          return false;
        }
        return !append_lowercase(cp, out);
      },
      i);
}

bool is_rust_whitespace(char32_t cp) {
  // The White_Space property, which utf8proc does not expose; it has not changed since Unicode 6.3.
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace prefopt::data::hf::detail
