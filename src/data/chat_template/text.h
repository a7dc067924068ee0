// Python str semantics over UTF-8 bytes for the chat-template engine: code-point decoding, Python's idea of
// whitespace and letter case, and the str methods templates call (strip, split, splitlines, title, ...).
// Never allocates a Python object model and never validates or repairs UTF-8: invalid bytes survive as
// themselves (decoded as U+DC80+byte, Python's surrogateescape, and encoded back to the same byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefopt::data::jinja {

std::u32string decode_utf8(std::string_view s);
void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(std::u32string_view s);
bool is_ascii(std::string_view s);
/// Number of code points (Python's len(str)).
std::size_t utf8_length(std::string_view s);

/// str.isspace() of one code point (also what `\s` matches in Python's re).
bool py_isspace(char32_t c);
bool py_isdigit(char32_t c);
bool py_isalpha(char32_t c);
/// Letters, digits and '_' (`\w` in Python's re, approximated outside Latin/Greek/Cyrillic).
bool py_isword(char32_t c);
bool py_iscased_upper(char32_t c);
bool py_iscased_lower(char32_t c);

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
/// str.title(): each run of cased letters starts upper-case, the rest lower-case.
std::string py_title(std::string_view s);
std::string py_swapcase(std::string_view s);

/// str.strip/lstrip/rstrip: `chars` nullopt strips whitespace, else any of its code points.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
/// str.split / str.rsplit; sep nullopt splits on whitespace runs. maxsplit < 0: no limit. An empty sep is a
/// ValueError in Python: the caller checks it.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
/// str.replace(old, new, count); count < 0 replaces all (an empty `old` inserts between code points).
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
/// str.count(sub) over code points (an empty sub counts len + 1).
int64_t py_count(std::string_view s, std::string_view sub);
/// str.find / rfind as a code-point index, -1 if absent.
int64_t py_find(std::string_view s, std::string_view sub, bool from_right);
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);

/// Python's repr(str): single quotes unless the text has ' and no ", escapes for \\, quotes, \n \r \t and
/// non-printable code points.
std::string py_repr_str(std::string_view s);

}  // namespace prefopt::data::jinja
