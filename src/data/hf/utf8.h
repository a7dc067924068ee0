// UTF-8 helpers shared by the tokenizer.json components: validation, char lengths and code points, and GPT-2's
// byte <-> printable-character table of the ByteLevel pre-tokenizer and decoder. Never allocates except to build
// strings the caller asked for; never accepts overlong forms, surrogates or code points above U+10FFFF as valid.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace prefopt::data::hf::utf8 {

/// Length in bytes of the character starting with `lead` (1 for a stray continuation byte, so loops advance).
inline std::size_t char_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

/// The byte offset of the first invalid sequence of `s`, or s.size() when `s` is valid UTF-8.
std::size_t first_invalid(std::string_view s);
inline bool valid(std::string_view s) { return first_invalid(s) == s.size(); }

/// The code point at s[i] (valid UTF-8 assumed) and its length.
char32_t decode(std::string_view s, std::size_t i, std::size_t* length);
/// Appends the UTF-8 form of `cp` to `out`.
void append(std::string& out, char32_t cp);

/// `s` with every invalid sequence replaced by U+FFFD, the way Rust's String::from_utf8_lossy does it
/// (one replacement per maximal invalid prefix, as the Unicode standard's "substitution of maximal subparts").
std::string lossy(std::string_view s);

/// GPT-2's table: byte b -> the UTF-8 string of the printable character standing for it.
const std::array<std::string, 256>& byte_to_char();
/// The inverse: the byte a ByteLevel character stands for, or -1 when `cp` is not one of the 256.
int char_to_byte(char32_t cp);

}  // namespace prefopt::data::hf::utf8
