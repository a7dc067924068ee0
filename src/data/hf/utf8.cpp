// UTF-8 validation, decoding and encoding, Rust's lossy conversion, and GPT-2's byte-level table. Never touches
// locale or wide-character APIs: everything is explicit byte arithmetic.
#include "utf8.h"

namespace prefopt::data::hf::utf8 {

namespace {

// The length of the valid sequence starting at s[i], or 0 if s[i] starts none; `maximal` receives the length of
// the longest prefix that could still have begun a valid sequence (at least 1), which is what lossy() replaces.
std::size_t valid_length(std::string_view s, std::size_t i, std::size_t* maximal) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = at(i);
  *maximal = 1;
  if (b0 < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  for (std::size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    const unsigned char b = at(i + k);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return 0;
    *maximal = k + 1;
  }
  return n;
}

}  // namespace

std::size_t first_invalid(std::string_view s) {
  std::size_t i = 0, maximal = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = valid_length(s, i, &maximal);
    if (n == 0) return i;
    i += n;
  }
  return s.size();
}

char32_t decode(std::string_view s, std::size_t i, std::size_t* length) {
  const auto b = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k])); };
  const std::size_t n = char_length(static_cast<unsigned char>(s[i]));
  *length = n;
  switch (n) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0, maximal = 0;
  while (i < s.size()) {
    const std::size_t n = valid_length(s, i, &maximal);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += maximal;
    }
  }
  return out;
}

namespace {

// GPT-2 keeps the printable Latin-1 bytes as themselves and maps the other 68 bytes, in order, to U+0100 onwards.
struct ByteTable {
  std::array<std::string, 256> to_char;
  std::array<int, 324> from_char;  // code points 0..323 cover every character of the table
  ByteTable() {
    from_char.fill(-1);
    const auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const int cp = printable(b) ? b : next++;
      append(to_char[b], static_cast<char32_t>(cp));
      from_char[cp] = b;
    }
  }
};

const ByteTable& table() {
  static const ByteTable t;
  return t;
}

}  // namespace

const std::array<std::string, 256>& byte_to_char() { return table().to_char; }

int char_to_byte(char32_t cp) { return cp < 324 ? table().from_char[cp] : -1; }

}  // namespace prefopt::data::hf::utf8
