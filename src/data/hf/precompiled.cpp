// The "Precompiled" normalizer: SentencePiece's precompiled_charsmap (a Darts double-array trie over UTF-8 keys
// plus a blob of NUL-terminated replacements), applied grapheme by grapheme as Hugging Face's spm_precompiled crate
// and tokenizers' precompiled.rs apply it, quirks included. Never reads outside the trie or the blob, whatever the
// bytes: a malformed charsmap is rejected at load and an out-of-range trie entry counts as no match.
#include <utf8proc.h>

#include <optional>

#include "normalizers_internal.h"

namespace prefopt::data::hf::detail {

namespace {

class Precompiled final : public Normalizer {
 public:
  Precompiled(std::string charsmap, const JsonContext& ctx) {
    const auto u32_at = [&](std::size_t i) {
      uint32_t v = 0;
      for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(charsmap[i + k]);
      return v;
    };
    if (charsmap.size() < 4) ctx.fail("cannot parse precompiled_charsmap: shorter than its header");
    const std::size_t units = u32_at(0) / 4;
    if (charsmap.size() < 4 + 4 * units) ctx.fail("cannot parse precompiled_charsmap: truncated trie");
    trie_.reserve(units);
    for (std::size_t i = 0; i < units; ++i) trie_.push_back(u32_at(4 + 4 * i));
    normalized_ = charsmap.substr(4 + 4 * units);
    if (!utf8::valid(normalized_)) ctx.fail("cannot parse precompiled_charsmap: replacements are not UTF-8");
    if (trie_.empty()) ctx.fail("cannot parse precompiled_charsmap: empty trie");
  }

  void normalize(Piece& piece) const override {
    const std::string& s = piece.text;
    if (s.empty()) return;
    Rewriter rw(piece);
    std::size_t b = 0, len;
    char32_t cp = utf8::decode(s, 0, &len);
    utf8proc_int32_t state = 0;
    while (b < s.size()) {
      // The extended grapheme cluster [b, e) (unicode-segmentation's graphemes(true)).
      std::size_t e = b + len;
      char32_t next = 0;
      while (e < s.size()) {
        next = utf8::decode(s, e, &len);
        if (utf8proc_grapheme_break_stateful(static_cast<utf8proc_int32_t>(cp), static_cast<utf8proc_int32_t>(next),
                                             &state)) {
          break;
        }
        cp = next;
        e += len;
      }
      state = 0;
      apply(rw, s, b, e);
      b = e;
      cp = next;
    }
    rw.finish();
  }

 private:
  // The grapheme whole when it is under 6 bytes and has an entry, else each character on its own.
  void apply(Rewriter& rw, const std::string& s, std::size_t b, std::size_t e) const {
    if (e - b < 6) {
      if (auto norm = transform(std::string_view(s).substr(b, e - b))) return rw.replace(b, e, *norm);
    }
    for (std::size_t i = b, len; i < e; i += len) {
      len = utf8::char_length(static_cast<unsigned char>(s[i]));
      if (auto norm = transform(std::string_view(s).substr(i, len))) {
        rw.replace(i, i + len, *norm);
      } else {
        rw.keep(i, i + len);
      }
    }
  }

  // The replacement of the shortest trie key that prefixes `chunk` (not necessarily all of it: the crate takes the
  // first result of a common-prefix search), up to the next NUL of the blob.
  std::optional<std::string_view> transform(std::string_view chunk) const {
    const auto offset = [](uint64_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); };
    const auto label = [](uint64_t u) { return u & ((1u << 31) | 0xFFu); };
    std::size_t node = 0;
    uint64_t unit = trie_[0];
    node ^= offset(unit);
    for (const char ch : chunk) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == 0) break;
      node ^= c;
      if (node >= trie_.size()) return std::nullopt;
      unit = trie_[node];
      if (label(unit) != c) return std::nullopt;
      node ^= offset(unit);
      if ((unit >> 8) & 1) {
        if (node >= trie_.size()) return std::nullopt;
        const std::size_t index = trie_[node] & ((1u << 31) - 1);
        if (index > normalized_.size()) return std::nullopt;
        std::size_t end = normalized_.find('\0', index);
        if (end == std::string::npos) end = normalized_.size();
        const std::string_view norm = std::string_view(normalized_).substr(index, end - index);
        if (!utf8::valid(norm)) return std::nullopt;  // starts inside a character: the crate would panic
        return norm;
      }
    }
    return std::nullopt;
  }

  std::vector<uint32_t> trie_;
  std::string normalized_;
};

}  // namespace

std::unique_ptr<Normalizer> make_precompiled(std::string charsmap, const JsonContext& ctx) {
  return std::make_unique<Precompiled>(std::move(charsmap), ctx);
}

}  // namespace prefopt::data::hf::detail
