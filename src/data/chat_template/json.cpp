// Reads JSON into template values and writes values as Python's json.dumps does (see json.h). Never accepts
// trailing garbage or nesting deeper than 512 levels on input; never emits anything but json.dumps's bytes.
#include "json.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "text.h"

namespace prefopt::data::jinja {
namespace {

constexpr int kMaxDepth = 512;

class Reader {
 public:
  Reader(std::string_view text, const std::string& what) : t_(text), what_(what) {}

  Value document() {
    Value v = value(0);
    skip_ws();
    if (p_ != t_.size()) error("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void error(const std::string& why) {
    fail(what_ + ": invalid JSON at byte " + std::to_string(p_) + ": " + why);
  }
  void skip_ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_;
  }
  bool take(std::string_view word) {
    if (t_.substr(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  Value value(int depth) {
    if (depth > kMaxDepth) error("nested deeper than 512 levels");
    skip_ws();
    if (p_ >= t_.size()) error("unexpected end of input");
    const char c = t_[p_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value::str(string());
    if (take("true")) return Value::boolean(true);
    if (take("false")) return Value::boolean(false);
    if (take("null")) return Value::none();
    if (take("NaN")) return Value::number(std::nan(""));
    if (take("Infinity")) return Value::number(HUGE_VAL);
    if (take("-Infinity")) return Value::number(-HUGE_VAL);
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    error(std::string("unexpected character '") + c + "'");
  }

  Value object(int depth) {
    ++p_;
    DictObj d;
    skip_ws();
    if (p_ < t_.size() && t_[p_] == '}') {
      ++p_;
      return make_dict(std::move(d));
    }
    while (true) {
      skip_ws();
      if (p_ >= t_.size() || t_[p_] != '"') error("expected a string key");
      Value key = Value::str(string());
      skip_ws();
      if (p_ >= t_.size() || t_[p_] != ':') error("expected ':'");
      ++p_;
      d.set(key, value(depth + 1));
      skip_ws();
      if (p_ < t_.size() && t_[p_] == ',') {
        ++p_;
        continue;
      }
      if (p_ < t_.size() && t_[p_] == '}') {
        ++p_;
        return make_dict(std::move(d));
      }
      error("expected ',' or '}'");
    }
  }

  Value array(int depth) {
    ++p_;
    std::vector<Value> items;
    skip_ws();
    if (p_ < t_.size() && t_[p_] == ']') {
      ++p_;
      return Value::list(std::move(items));
    }
    while (true) {
      items.push_back(value(depth + 1));
      skip_ws();
      if (p_ < t_.size() && t_[p_] == ',') {
        ++p_;
        continue;
      }
      if (p_ < t_.size() && t_[p_] == ']') {
        ++p_;
        return Value::list(std::move(items));
      }
      error("expected ',' or ']'");
    }
  }

  unsigned hex4() {
    if (p_ + 4 > t_.size()) error("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = t_[p_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= h - '0';
      else if (h >= 'a' && h <= 'f')
        v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        v |= h - 'A' + 10;
      else
        error("invalid \\u escape");
    }
    return v;
  }

  std::string string() {
    ++p_;
    std::string out;
    while (true) {
      if (p_ >= t_.size()) error("unterminated string");
      const char c = t_[p_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error("control character in string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (p_ >= t_.size()) error("unterminated string");
      const char e = t_[p_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          char32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && t_.substr(p_, 2) == "\\u") {
            const std::size_t save = p_;
            p_ += 2;
            const unsigned lo = hex4();
            if (lo >= 0xDC00 && lo <= 0xDFFF)
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else
              p_ = save;
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) error("lone UTF-16 surrogate in \\u escape (not valid UTF-8 text)");
          append_utf8(out, cp);
          break;
        }
        default: error(std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  Value number() {
    const std::size_t start = p_;
    if (t_[p_] == '-') ++p_;
    if (p_ < t_.size() && t_[p_] == '0') {
      ++p_;
    } else if (p_ < t_.size() && t_[p_] >= '1' && t_[p_] <= '9') {
      while (p_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[p_]))) ++p_;
    } else {
      error("invalid number");
    }
    bool is_float = false;
    if (p_ < t_.size() && t_[p_] == '.') {
      is_float = true;
      ++p_;
      if (p_ >= t_.size() || !std::isdigit(static_cast<unsigned char>(t_[p_]))) error("invalid number");
      while (p_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[p_]))) ++p_;
    }
    if (p_ < t_.size() && (t_[p_] == 'e' || t_[p_] == 'E')) {
      is_float = true;
      ++p_;
      if (p_ < t_.size() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
      if (p_ >= t_.size() || !std::isdigit(static_cast<unsigned char>(t_[p_]))) error("invalid number");
      while (p_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[p_]))) ++p_;
    }
    const std::string text(t_.substr(start, p_ - start));
    if (is_float) return Value::number(std::strtod(text.c_str(), nullptr));
    errno = 0;
    const long long v = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == ERANGE) error("integer " + text + " does not fit in 64 bits");
    return Value::integer(v);
  }

  std::string_view t_;
  const std::string& what_;
  std::size_t p_ = 0;
};

const char kHex[] = "0123456789abcdef";

void append_u(std::string& out, unsigned v) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 15]);
}

void append_json_str(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  auto simple = [&](char32_t c) {
    switch (c) {
      case '"': out += "\\\""; return true;
      case '\\': out += "\\\\"; return true;
      case '\n': out += "\\n"; return true;
      case '\r': out += "\\r"; return true;
      case '\t': out += "\\t"; return true;
      case '\b': out += "\\b"; return true;
      case '\f': out += "\\f"; return true;
      default: return false;
    }
  };
  if (!ensure_ascii) {
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (simple(c)) continue;
      if (c < 0x20)
        append_u(out, c);
      else
        out.push_back(ch);  // non-ASCII bytes pass through as UTF-8
    }
  } else {
    for (char32_t c : decode_utf8(s)) {
      if (simple(c)) continue;
      if (c >= 0x20 && c <= 0x7E) {
        out.push_back(static_cast<char>(c));
      } else if (c < 0x10000) {
        append_u(out, c);
      } else {
        const char32_t v = c - 0x10000;
        append_u(out, 0xD800 + (v >> 10));
        append_u(out, 0xDC00 + (v & 0x3FF));
      }
    }
  }
  out.push_back('"');
}

std::string float_json(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return float_repr(d);
}

[[noreturn]] void not_serializable(const Value& v) {
  fail("Object of type " + type_name(v) + " is not JSON serializable");
}

class Writer {
 public:
  explicit Writer(const JsonStyle& s) : s_(s) {}

  void write(std::string& out, const Value& v, int level) {
    if (level > kMaxDepth) fail("tojson: value nested too deeply");
    switch (v.kind) {
      case Kind::None: out += "null"; return;
      case Kind::Bool: out += v.b ? "true" : "false"; return;
      case Kind::Int: out += std::to_string(v.i); return;
      case Kind::Float: out += float_json(v.f); return;
      case Kind::Str: append_json_str(out, v.s(), s_.ensure_ascii); return;
      case Kind::List:
      case Kind::Tuple: {
        const auto& items = v.items();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out.push_back('[');
        for (std::size_t k = 0; k < items.size(); ++k) {
          out += k ? s_.item_separator : "";
          newline(out, level + 1);
          write(out, items[k], level + 1);
        }
        newline(out, level);
        out.push_back(']');
        return;
      }
      case Kind::Dict: {
        std::vector<const std::pair<Value, Value>*> entries;
        for (const auto& e : v.dict().entries) entries.push_back(&e);
        if (entries.empty()) {
          out += "{}";
          return;
        }
        if (s_.sort_keys)
          std::stable_sort(entries.begin(), entries.end(),
                           [](const auto* a, const auto* b) { return py_less(a->first, b->first); });
        out.push_back('{');
        bool first = true;
        for (const auto* e : entries) {
          out += first ? "" : s_.item_separator;
          first = false;
          newline(out, level + 1);
          key(out, e->first);
          out += s_.key_separator;
          write(out, e->second, level + 1);
        }
        newline(out, level);
        out.push_back('}');
        return;
      }
      default: not_serializable(v);
    }
  }

 private:
  void newline(std::string& out, int level) {
    if (!s_.indent) return;
    out.push_back('\n');
    for (int k = 0; k < level; ++k) out += *s_.indent;
  }
  void key(std::string& out, const Value& k) {
    switch (k.kind) {
      case Kind::Str: append_json_str(out, k.s(), s_.ensure_ascii); return;
      case Kind::Int: out += "\"" + std::to_string(k.i) + "\""; return;
      case Kind::Float: out += "\"" + float_json(k.f) + "\""; return;
      case Kind::Bool: out += k.b ? "\"true\"" : "\"false\""; return;
      case Kind::None: out += "\"null\""; return;
      default: fail("keys must be str, int, float, bool or None, not " + type_name(k));
    }
  }
  const JsonStyle& s_;
};

}  // namespace

Value parse_json(std::string_view text, const std::string& what) { return Reader(text, what).document(); }

std::string dump_json(const Value& v, const JsonStyle& style) {
  std::string out;
  Writer(style).write(out, v, 0);
  return out;
}

}  // namespace prefopt::data::jinja
