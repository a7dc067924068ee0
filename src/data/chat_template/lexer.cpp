// jinja2's lexer rules, re-stated without regular expressions (see lexer.h): the whitespace control of
// trim_blocks / lstrip_blocks / "-" / "+", raw blocks, comments, and the literal syntax of names, numbers and
// strings (Python's unicode-escape for string escapes). Never looks at what a tag means.
#include "lexer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "text.h"

namespace prefopt::data::jinja {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ascii_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

class Lexer {
 public:
  explicit Lexer(std::string_view raw) : src_(normalize(raw)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      std::size_t q = pos_;
      while (true) {
        q = src_.find('{', q);
        if (q == std::string::npos || q + 1 >= src_.size()) {
          q = std::string::npos;
          break;
        }
        const char k = src_[q + 1];
        if (k == '{' || k == '%' || k == '#') break;
        ++q;
      }
      if (q == std::string::npos) {
        data(src_.substr(pos_), pos_);
        pos_ = src_.size();
        break;
      }
      const char kind = src_[q + 1];
      const char sign = (q + 2 < src_.size() && (src_[q + 2] == '-' || src_[q + 2] == '+')) ? src_[q + 2] : 0;
      const std::size_t after = q + 2 + (sign ? 1 : 0);
      const std::size_t raw_end = kind == '%' ? raw_begin(after) : std::string::npos;
      data(strip(src_.substr(pos_, q - pos_), sign, kind != '{'), pos_);
      pos_ = after;
      if (kind == '#') {
        comment(q);
      } else if (raw_end != std::string::npos) {
        pos_ = raw_end;
        line_starting_ = src_[raw_end - 1] == '\n';
        raw(q);
      } else {
        tag(kind == '%', q);
      }
    }
    push(Tok::Eof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  static std::string normalize(std::string_view raw) {
    std::string s;
    s.reserve(raw.size());
    for (std::size_t k = 0; k < raw.size(); ++k) {
      if (raw[k] == '\r') {
        s.push_back('\n');
        if (k + 1 < raw.size() && raw[k + 1] == '\n') ++k;
      } else {
        s.push_back(raw[k]);
      }
    }
    if (!s.empty() && s.back() == '\n') s.pop_back();  // keep_trailing_newline=False
    return s;
  }

  int line_at(std::size_t p) {
    if (p < line_pos_) line_pos_ = 0, line_ = 1;  // an error reported at an earlier tag start
    while (line_pos_ < p && line_pos_ < src_.size()) {
      if (src_[line_pos_] == '\n') ++line_;
      ++line_pos_;
    }
    return line_;
  }
  [[noreturn]] void error(const std::string& msg, std::size_t p) { throw Fault{msg, line_at(p)}; }

  void push(Tok type, std::string text, std::size_t p, Value v = {}) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.value = std::move(v);
    t.line = line_at(p);
    tokens_.push_back(std::move(t));
  }
  void data(std::string text, std::size_t p) {
    if (!text.empty()) push(Tok::Data, std::move(text), p);
  }

  // Whitespace rules for the text before a tag: "-" strips all of it; otherwise lstrip_blocks removes the
  // spaces and tabs between a line start and a block or comment tag (never before {{ }}), unless "+".
  std::string strip(std::string text, char sign, bool block_or_comment) {
    if (sign == '-') return py_strip(text, std::nullopt, false, true);
    if (sign == '+' || !block_or_comment) return text;
    const std::size_t nl = text.rfind('\n');
    const std::size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting_) return text;
    const std::string_view tail = std::string_view(text).substr(l_pos);
    if (tail.empty()) return text;
    for (char32_t c : decode_utf8(tail))
      if (!py_isspace(c)) return text;
    return text.substr(0, l_pos);
  }

  // The length of the identifier character at p (0 if none): ASCII letters, '_', digits unless `start`, and
  // non-ASCII letters / digits (Python identifiers; symbols such as U+2581 are not).
  std::size_t name_char(std::size_t p, bool start) const {
    const char c = src_[p];
    if (is_ascii_name_start(c) || (!start && is_digit(c))) return 1;
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0xC0) return 0;
    const std::size_t len = u >= 0xF0 ? 4 : u >= 0xE0 ? 3 : 2;
    const std::u32string one = decode_utf8(std::string_view(src_).substr(p, len));
    return one.size() == 1 && (py_isalpha(one[0]) || (!start && py_isdigit(one[0]))) ? len : 0;
  }

  // jinja2's "unexpected char" message: the character's repr and its position in characters.
  std::string unexpected_char(std::size_t p) const {
    const unsigned char u = static_cast<unsigned char>(src_[p]);
    const std::size_t len = u >= 0xF0 ? 4 : u >= 0xE0 ? 3 : u >= 0xC0 ? 2 : 1;
    return "unexpected char " + py_repr_str(std::string_view(src_).substr(p, len)) + " at " +
           std::to_string(utf8_length(std::string_view(src_).substr(0, p)));
  }

  std::size_t skip_space(std::size_t p) const {
    while (p < src_.size()) {
      const unsigned char c = static_cast<unsigned char>(src_[p]);
      if (c < 0x80) {
        if (!py_isspace(c)) break;
        ++p;
        continue;
      }
      const std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      const std::u32string one = decode_utf8(std::string_view(src_).substr(p, len));
      if (one.size() != 1 || !py_isspace(one[0])) break;
      p += len;
    }
    return p;
  }

  // The end of a block tag at p ("+%}", "-%}" and following whitespace, "%}" and one newline), or npos.
  std::size_t block_end(std::size_t p) const {
    if (src_.compare(p, 3, "+%}") == 0) return p + 3;
    if (src_.compare(p, 3, "-%}") == 0) return skip_space(p + 3);
    if (src_.compare(p, 2, "%}") == 0) return p + 2 + ((p + 2 < src_.size() && src_[p + 2] == '\n') ? 1 : 0);
    return std::string::npos;
  }

  // "{% raw %}" ends at the returned position (no newline trimmed after it), or npos if this is not raw.
  std::size_t raw_begin(std::size_t p) const {
    p = skip_space(p);
    if (src_.compare(p, 3, "raw") != 0) return std::string::npos;
    p = skip_space(p + 3);
    if (src_.compare(p, 3, "-%}") == 0) return skip_space(p + 3);
    if (src_.compare(p, 2, "%}") == 0) return p + 2;
    return std::string::npos;
  }

  void raw(std::size_t begin) {
    if (pos_ >= src_.size()) return;  // as for comments, an unclosed raw block with nothing after it is accepted
    for (std::size_t h = src_.find("{%", pos_); h != std::string::npos; h = src_.find("{%", h + 1)) {
      const char sign = (h + 2 < src_.size() && (src_[h + 2] == '-' || src_[h + 2] == '+')) ? src_[h + 2] : 0;
      std::size_t p = skip_space(h + 2 + (sign ? 1 : 0));
      if (src_.compare(p, 6, "endraw") != 0) continue;
      const std::size_t end = block_end(skip_space(p + 6));
      if (end == std::string::npos) continue;
      data(strip(src_.substr(pos_, h - pos_), sign, true), pos_);
      pos_ = end;
      line_starting_ = src_[end - 1] == '\n';
      return;
    }
    error("Missing end of raw directive", begin);
  }

  void comment(std::size_t begin) {
    if (pos_ >= src_.size()) return;  // jinja2 quirk: "{#" as the very last characters is accepted silently
    for (std::size_t h = src_.find("#}", pos_); h != std::string::npos; h = src_.find("#}", h + 1)) {
      std::size_t end = h + 2;
      if (h > pos_ && src_[h - 1] == '-')
        end = skip_space(end);
      else if (!(h > pos_ && src_[h - 1] == '+') && end < src_.size() && src_[end] == '\n')
        ++end;
      pos_ = end;
      line_starting_ = src_[end - 1] == '\n';
      return;
    }
    error("Missing end of comment tag", begin);
  }

  std::size_t digits(std::size_t p) const {  // (\d+_)*\d+
    if (p >= src_.size() || !is_digit(src_[p])) return std::string::npos;
    while (true) {
      while (p < src_.size() && is_digit(src_[p])) ++p;
      if (p + 1 < src_.size() && src_[p] == '_' && is_digit(src_[p + 1])) {
        ++p;
        continue;
      }
      return p;
    }
  }

  std::size_t float_end(std::size_t p) const {
    if (p > 0 && src_[p - 1] == '.') return std::string::npos;
    const std::size_t d = digits(p);
    if (d == std::string::npos) return d;
    auto exponent = [&](std::size_t q) -> std::size_t {
      if (q >= src_.size() || (src_[q] != 'e' && src_[q] != 'E')) return std::string::npos;
      ++q;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      return digits(q);
    };
    std::size_t frac = std::string::npos;
    if (d < src_.size() && src_[d] == '.') frac = digits(d + 1);
    if (frac != std::string::npos) {
      const std::size_t e = exponent(frac);
      if (e != std::string::npos) return e;
    }
    const std::size_t e = exponent(d);
    if (e != std::string::npos) return e;
    return frac;
  }

  std::size_t integer_end(std::size_t p, int& base) const {
    auto run = [&](std::size_t q, auto ok) {  // (_?[class])+
      std::size_t start = q;
      while (q < src_.size()) {
        if (ok(src_[q]))
          ++q;
        else if (src_[q] == '_' && q + 1 < src_.size() && ok(src_[q + 1]))
          q += 2;
        else
          break;
      }
      return q == start ? std::string::npos : q;
    };
    if (p + 1 < src_.size() && src_[p] == '0') {
      const char x = static_cast<char>(src_[p + 1] | 0x20);
      std::size_t e = std::string::npos;
      if (x == 'b')
        base = 2, e = run(p + 2, [](char c) { return c == '0' || c == '1'; });
      else if (x == 'o')
        base = 8, e = run(p + 2, [](char c) { return c >= '0' && c <= '7'; });
      else if (x == 'x')
        base = 16, e = run(p + 2, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
      if (e != std::string::npos) return e;
    }
    base = 10;
    if (p < src_.size() && src_[p] >= '1' && src_[p] <= '9') {
      const std::size_t e = run(p + 1, is_digit);
      return e == std::string::npos ? p + 1 : e;
    }
    if (p < src_.size() && src_[p] == '0') {
      const std::size_t e = run(p + 1, [](char c) { return c == '0'; });
      return e == std::string::npos ? p + 1 : e;
    }
    return std::string::npos;
  }

  // Python's unicode-escape over the quoted text (jinja2 decodes string literals that way).
  std::string unescape(std::string_view body, std::size_t p) {
    std::string out;
    for (std::size_t k = 0; k < body.size(); ++k) {
      if (body[k] != '\\' || k + 1 >= body.size()) {
        out.push_back(body[k]);
        continue;
      }
      const char e = body[++k];
      auto hex = [&](int n, const char* what) -> char32_t {
        char32_t v = 0;
        for (int j = 0; j < n; ++j) {
          if (k + 1 >= body.size() || !std::isxdigit(static_cast<unsigned char>(body[k + 1])))
            error(std::string("truncated ") + what + " escape", p);
          const char h = body[++k];
          v = v * 16 + static_cast<char32_t>(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        return v;
      };
      switch (e) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x': append_utf8(out, hex(2, "\\xXX")); break;
        case 'u': append_utf8(out, hex(4, "\\uXXXX")); break;
        case 'U': {
          const char32_t v = hex(8, "\\UXXXXXXXX");
          if (v > 0x10FFFF) error("illegal Unicode character", p);
          append_utf8(out, v);
          break;
        }
        case 'N': error("\\N{...} escapes are not supported", p);
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = static_cast<char32_t>(e - '0');
            for (int j = 0; j < 2 && k + 1 < body.size() && body[k + 1] >= '0' && body[k + 1] <= '7'; ++j)
              v = v * 8 + static_cast<char32_t>(body[++k] - '0');
            append_utf8(out, v);
          } else {
            out.push_back('\\');  // unknown escapes stay as written
            out.push_back(e);
          }
      }
    }
    return out;
  }

  void tag(bool block, std::size_t begin) {
    push(block ? Tok::BlockBegin : Tok::VarBegin, "", begin);
    std::vector<char> balance;
    while (true) {
      if (pos_ >= src_.size())
        error(block ? "unexpected end of template: missing '%}'" : "unexpected end of template: missing '}}'", begin);
      if (balance.empty()) {
        std::size_t end = std::string::npos;
        if (block)
          end = block_end(pos_);
        else if (src_.compare(pos_, 3, "-}}") == 0)
          end = skip_space(pos_ + 3);
        else if (src_.compare(pos_, 2, "}}") == 0)
          end = pos_ + 2;
        if (end != std::string::npos) {
          push(block ? Tok::BlockEnd : Tok::VarEnd, "", pos_);
          pos_ = end;
          line_starting_ = src_[end - 1] == '\n';
          return;
        }
      }
      const std::size_t ws = skip_space(pos_);
      if (ws != pos_) {
        pos_ = ws;
        continue;
      }
      const char c = src_[pos_];
      const std::size_t p = pos_;
      int base = 10;
      std::size_t e = float_end(p);
      if (e != std::string::npos) {
        std::string text;
        for (std::size_t k = p; k < e; ++k)
          if (src_[k] != '_') text.push_back(src_[k]);
        push(Tok::Float, "", p, Value::number(std::strtod(text.c_str(), nullptr)));
        pos_ = e;
        continue;
      }
      if ((e = integer_end(p, base)) != std::string::npos) {
        std::string text;
        for (std::size_t k = p + (base == 10 ? 0 : 2); k < e; ++k)
          if (src_[k] != '_') text.push_back(src_[k]);
        errno = 0;
        const long long v = std::strtoll(text.c_str(), nullptr, base);
        if (errno == ERANGE)
          error("integer literal " + std::string(src_.substr(p, e - p)) + " does not fit in 64 bits", p);
        push(Tok::Integer, "", p, Value::integer(v));
        pos_ = e;
        continue;
      }
      if (std::size_t n = name_char(p, true)) {
        e = p + n;
        while (e < src_.size() && (n = name_char(e, false))) e += n;
        push(Tok::Name, src_.substr(p, e - p), p);
        pos_ = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        e = p + 1;
        while (e < src_.size() && src_[e] != c) e += src_[e] == '\\' ? 2 : 1;
        if (e >= src_.size()) error(unexpected_char(p), p);
        push(Tok::String, unescape(std::string_view(src_).substr(p + 1, e - p - 1), p), p);
        pos_ = e + 1;
        continue;
      }
      static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                         "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};
      bool matched = false;
      for (const char* op : kOps) {
        const std::size_t n = std::char_traits<char>::length(op);
        if (src_.compare(p, n, op) != 0) continue;
        if (n == 1 && (c == '{' || c == '(' || c == '[')) balance.push_back(c == '{' ? '}' : c == '(' ? ')' : ']');
        if (n == 1 && (c == '}' || c == ')' || c == ']')) {
          if (balance.empty()) error(std::string("unexpected '") + c + "'", p);
          if (balance.back() != c) error(std::string("unexpected '") + c + "', expected '" + balance.back() + "'", p);
          balance.pop_back();
        }
        push(Tok::Op, op, p);
        pos_ = p + n;
        matched = true;
        break;
      }
      if (!matched) error(unexpected_char(p), p);
    }
  }

  std::string src_;
  std::size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
  std::size_t line_pos_ = 0;
  int line_ = 1;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace prefopt::data::jinja
