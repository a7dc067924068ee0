// jinja2's built-in filters with transformers' tojson (see builtins.h): the list of names, and the filters over
// single values (text, numbers, tojson), each following jinja2 3.1's code: its Python signature, defaults and
// errors; the sequence filters are in seq_filters.cpp. Filters jinja2 has but this engine lacks (wordwrap,
// urlize, ...) raise "unsupported filter" when used. Never mutates its input.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "interp.h"
#include "json.h"
#include "text.h"

namespace prefopt::data::jinja {
namespace {

const std::set<std::string> kSupported = {
    "abs",      "attr",     "batch",      "capitalize", "center",     "count",       "d",       "default",
    "dictsort", "e",        "escape",     "first",      "float",      "forceescape", "format",  "groupby",
    "indent",   "int",      "join",       "last",       "length",     "list",        "lower",   "items",
    "map",      "min",      "max",        "reject",     "rejectattr", "replace",     "reverse", "round",
    "safe",     "select",   "selectattr", "slice",      "sort",       "string",      "sum",     "title",
    "trim",     "truncate", "unique",     "upper",      "wordcount",  "tojson"};
const std::set<std::string> kUnsupported = {"filesizeformat", "pprint", "random",   "striptags",
                                            "urlencode",      "urlize", "wordwrap", "xmlattr"};

const Value* arg(const Args& a, std::size_t i, const std::string& name) { return a.get(i, name); }
bool flag(const Args& a, std::size_t i, const std::string& name) { return a.flag(i, name); }
int64_t int_arg(const Args& a, std::size_t i, const std::string& name, int64_t dflt) {
  return a.integer(i, name, dflt);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Python's float(str): optional sign, digits with single underscores, a fraction, an exponent, or inf / nan.
bool parse_float(const std::string& text, double& out) {
  std::string s = py_strip(text, std::nullopt, true, true);
  std::string lower = py_lower(s);
  std::size_t k = (!lower.empty() && (lower[0] == '+' || lower[0] == '-')) ? 1 : 0;
  const std::string body = lower.substr(k);
  if (body == "inf" || body == "infinity" || body == "nan") {
    out = body == "nan" ? std::nan("") : (lower[0] == '-' ? -HUGE_VAL : HUGE_VAL);
    return true;
  }
  std::string clean = lower.substr(0, k);
  bool digit_before = false, any_digit = false, seen_dot = false, seen_e = false;
  for (std::size_t i = k; i < lower.size(); ++i) {
    const char c = lower[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      clean.push_back(c), digit_before = true, any_digit = true;
    } else if (c == '_' && digit_before && i + 1 < lower.size() &&
               std::isdigit(static_cast<unsigned char>(lower[i + 1]))) {
      continue;
    } else if (c == '.' && !seen_dot && !seen_e) {
      clean.push_back(c), seen_dot = true, digit_before = false;
    } else if (c == 'e' && any_digit && !seen_e) {
      clean.push_back(c), seen_e = true, digit_before = false, any_digit = false;
      if (i + 1 < lower.size() && (lower[i + 1] == '+' || lower[i + 1] == '-')) clean.push_back(lower[++i]);
    } else {
      return false;
    }
  }
  if (!any_digit) return false;
  out = std::strtod(clean.c_str(), nullptr);
  return true;
}

// Python's int(str, base) for base 10 / 2 / 8 / 16 (with the matching optional prefix) or 0.
bool parse_int(const std::string& text, int64_t base, int64_t& out) {
  std::string s = py_strip(text, std::nullopt, true, true);
  bool neg = false;
  std::size_t k = 0;
  if (k < s.size() && (s[k] == '+' || s[k] == '-')) neg = s[k++] == '-';
  auto prefix = [&](char p) { return k + 1 < s.size() && s[k] == '0' && (s[k + 1] | 0x20) == p; };
  if (base == 0) {
    base = prefix('x') ? 16 : prefix('o') ? 8 : prefix('b') ? 2 : 10;
    if (base != 10) k += 2;
  } else if ((base == 16 && prefix('x')) || (base == 8 && prefix('o')) || (base == 2 && prefix('b'))) {
    k += 2;
  }
  if (base < 2 || base > 36) fail("int() base must be >= 2 and <= 36, or 0");
  std::string digits;
  for (; k < s.size(); ++k) {
    if (s[k] == '_' && !digits.empty() && k + 1 < s.size() && s[k + 1] != '_') continue;
    const char c = static_cast<char>(s[k] | 0x20);
    const int d = std::isdigit(static_cast<unsigned char>(s[k])) ? s[k] - '0'
                  : (c >= 'a' && c <= 'z')                       ? c - 'a' + 10
                                                                 : 99;
    if (d >= base) return false;
    digits.push_back(s[k]);
  }
  if (digits.empty()) return false;
  errno = 0;
  const long long v = std::strtoll(digits.c_str(), nullptr, static_cast<int>(base));
  if (errno == ERANGE) fail("int(): " + text + " does not fit in 64 bits");
  out = neg ? -v : v;
  return true;
}

Value do_round(const Value& v, int64_t precision, const std::string& method) {
  if (method != "common" && method != "ceil" && method != "floor") fail("method must be common, ceil or floor");
  if (!v.is_number()) fail("type " + type_name(v) + " doesn't define __round__ method");
  if (method != "common") {
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_double() * scale;
    return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
  }
  if (v.kind != Kind::Float) {  // round(int, n) stays an int; negative n rounds half to even
    int64_t x = v.as_int();
    if (precision >= 0) return Value::integer(x);
    if (precision < -18) return Value::integer(0);
    int64_t p = 1;
    for (int64_t k = 0; k < -precision; ++k) p *= 10;
    int64_t q = x / p, r = x % p;
    if (r < 0) r += p, q -= 1;
    if (2 * r > p || (2 * r == p && (q & 1))) q += 1;
    return Value::integer(q * p);
  }
  const double x = v.f;
  if (!std::isfinite(x) || precision > 308) return Value::number(x);
  if (precision >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::min<int64_t>(precision, 340)), x);  // exact, half-even
    return Value::number(std::strtod(buf, nullptr));
  }
  const double p = std::pow(10.0, static_cast<double>(-precision));
  return Value::number(std::nearbyint(x / p) * p);
}

Value do_tojson(const Value& v, const Args& a) {
  a.check("tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle style;
  style.ensure_ascii = flag(a, 0, "ensure_ascii");
  style.sort_keys = flag(a, 3, "sort_keys");
  const Value* indent = arg(a, 1, "indent");
  if (indent && !indent->is_none()) {
    if (indent->is_str())
      style.indent = indent->s();
    else if (indent->kind == Kind::Int || indent->kind == Kind::Bool)
      style.indent = std::string(static_cast<std::size_t>(std::max<int64_t>(0, indent->as_int())), ' ');
    else
      fail("tojson: indent must be an int or a str, not " + type_name(*indent));
    style.item_separator = ",";
  }
  const Value* seps = arg(a, 2, "separators");
  if (seps && !seps->is_none()) {
    const std::vector<Value> parts = iterate(*seps);
    if (parts.size() != 2 || !parts[0].is_str() || !parts[1].is_str())
      fail("tojson: separators must be an (item_separator, key_separator) pair of strings");
    style.item_separator = parts[0].s();
    style.key_separator = parts[1].s();
  }
  return Value::str(dump_json(v, style));
}

std::string do_indent(const std::string& text, const Value* width, bool first, bool blank) {
  std::string ind = width && width->is_str()
                        ? width->s()
                        : std::string(static_cast<std::size_t>(std::max<int64_t>(0, width ? width->as_int() : 4)), ' ');
  const std::vector<std::string> lines = py_splitlines(text + "\n", false);
  std::string rv;
  if (blank) {
    for (std::size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (std::size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : ind + lines[k]);
  }
  return first ? ind + rv : rv;
}

std::string jinja_title(const std::string& s) {
  std::string out;
  const std::u32string cps = decode_utf8(s);
  auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
  bool word_start = true;
  for (char32_t c : cps) {
    if (is_sep(c)) {
      append_utf8(out, c);
      word_start = true;
      continue;
    }
    std::string one;
    append_utf8(one, c);
    out += word_start ? py_upper(one) : py_lower(one);
    word_start = false;
  }
  return out;
}

}  // namespace

bool jinja_has_filter(const std::string& name) { return kSupported.count(name) || kUnsupported.count(name); }

Value apply_filter(Renderer& r, const std::string& name, const Value& v, const Args& a) {
  if (kUnsupported.count(name)) fail("unsupported filter \"" + name + "\"");
  if (!kSupported.count(name)) fail("No filter named '" + name + "' found.");
  if (name == "default" || name == "d") {
    a.check(name, {"default_value", "boolean"});
    const Value* dflt = arg(a, 0, "default_value");
    if (v.is_undefined() || (flag(a, 1, "boolean") && !truthy(v))) return dflt ? *dflt : Value::str("");
    return v;
  }
  if (name == "tojson") return do_tojson(v, a);
  static const std::set<std::string> kNoArguments = {"length", "count",       "string", "safe",  "e",
                                                     "escape", "forceescape", "upper",  "lower", "capitalize",
                                                     "title",  "wordcount",   "abs"};
  if (kNoArguments.count(name)) a.check(name, {});
  if (name == "length" || name == "count") return Value::integer(py_len(v));
  if (name == "string") return Value::str(py_str(v));
  if (name == "safe") return Value::str(py_str(v));
  if (name == "e" || name == "escape" || name == "forceescape") return Value::str(html_escape(py_str(v)));
  if (name == "trim") {
    a.check(name, {"chars"});
    const Value* chars = arg(a, 0, "chars");
    return Value::str(py_strip(
        py_str(v), chars && !chars->is_none() ? std::optional<std::string>(py_str(*chars)) : std::nullopt, true, true));
  }
  if (name == "upper") return Value::str(py_upper(py_str(v)));
  if (name == "lower") return Value::str(py_lower(py_str(v)));
  if (name == "capitalize") return Value::str(py_capitalize(py_str(v)));
  if (name == "title") return Value::str(jinja_title(py_str(v)));
  if (name == "replace") {
    a.check(name, {"old", "new", "count"});
    if (a.pos.size() < 2 && !(a.kwarg("old") && a.kwarg("new")))
      fail("replace() missing required arguments 'old' and 'new'");
    const Value* count = arg(a, 2, "count");
    return Value::str(py_replace(py_str(v), py_str(*arg(a, 0, "old")), py_str(*arg(a, 1, "new")),
                                 count && !count->is_none() ? int_arg(a, 2, "count", -1) : -1));
  }
  static const std::set<std::string> kSequence = {
      "first",  "last", "list",     "items",   "reverse", "map", "select", "reject", "selectattr", "rejectattr",
      "unique", "sort", "dictsort", "groupby", "min",     "max", "sum",    "join",   "batch",      "slice"};
  if (kSequence.count(name)) return apply_seq_filter(r, name, v, a);
  if (name == "abs") {
    if (v.is_undefined()) raise_undefined(v);
    if (v.kind == Kind::Float) return Value::number(std::fabs(v.f));
    if (!v.is_number()) fail("bad operand type for abs(): '" + type_name(v) + "'");
    return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (name == "round") {
    a.check(name, {"precision", "method"});
    const Value* method = arg(a, 1, "method");
    return do_round(v, int_arg(a, 0, "precision", 0), method ? py_str(*method) : "common");
  }
  if (name == "int") {
    a.check(name, {"default", "base"});
    if (v.is_undefined()) raise_undefined(v);  // Undefined.__int__ raises, and do_int does not catch that
    const Value* dflt = arg(a, 0, "default");
    const Value fallback = dflt ? *dflt : Value::integer(0);
    if (v.kind == Kind::Int) return v;
    if (v.kind == Kind::Bool) return Value::integer(v.as_int());
    int64_t out = 0;
    double d = 0;
    if (v.is_str() && parse_int(v.s(), int_arg(a, 1, "base", 10), out)) return Value::integer(out);
    if (v.kind == Kind::Float)
      d = v.f;
    else if (!(v.is_str() && parse_float(v.s(), d)))
      return fallback;
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value::integer(static_cast<int64_t>(d));
  }
  if (name == "float") {
    a.check(name, {"default"});
    if (v.is_undefined()) raise_undefined(v);
    const Value* dflt = arg(a, 0, "default");
    double d = 0;
    if (v.is_number()) return Value::number(v.as_double());
    if (v.is_str() && parse_float(v.s(), d)) return Value::number(d);
    return dflt ? *dflt : Value::number(0.0);
  }
  if (name == "format") {
    if (!a.pos.empty() && !a.kw.empty()) fail("can't handle positional and keyword arguments at the same time");
    if (!a.kw.empty()) {
      DictObj d;
      for (const auto& [k, x] : a.kw) d.set(Value::str(k), x);
      return printf_format(py_str(v), make_dict(std::move(d)));
    }
    return printf_format(py_str(v), Value::tuple(a.pos));
  }
  if (name == "indent") {
    a.check(name, {"width", "first", "blank"});
    // jinja2 appends "\n" to the value itself, so only a str (or an error) gets through
    if (!v.is_str()) binary_op("+", v, Value::str("\n"));
    const Value* width = arg(a, 0, "width");
    if (width && !width->is_str() && width->kind != Kind::Int && width->kind != Kind::Bool)
      fail("indent: width must be an int or a str");
    return Value::str(do_indent(v.s(), width, flag(a, 1, "first"), flag(a, 2, "blank")));
  }
  if (name == "center") {
    a.check(name, {"width"});
    Args m;
    m.pos.push_back(Value::integer(int_arg(a, 0, "width", 80)));
    return call_method(r, Value::str(py_str(v)), "center", m);
  }
  if (name == "truncate") {
    a.check(name, {"length", "killwords", "end", "leeway"});
    const int64_t length = int_arg(a, 0, "length", 255), leeway = int_arg(a, 3, "leeway", 5);
    const Value* endv = arg(a, 2, "end");
    const std::string end = endv ? py_str(*endv) : "...";
    const int64_t end_len = static_cast<int64_t>(utf8_length(end));
    if (length < end_len) fail("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
    if (leeway < 0) fail("expected leeway >= 0, got " + std::to_string(leeway));
    const std::string s = py_str(v);
    const std::u32string cps = decode_utf8(s);
    if (static_cast<int64_t>(cps.size()) <= length + leeway) return Value::str(s);
    const std::string head =
        encode_utf8(std::u32string_view(cps).substr(0, static_cast<std::size_t>(length - end_len)));
    if (flag(a, 1, "killwords")) return Value::str(head + end);
    return Value::str(py_split(head, std::string(" "), 1, true)[0] + end);
  }
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (char32_t c : decode_utf8(py_str(v))) {
      const bool w = py_isword(c);
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::integer(n);
  }
  if (name == "attr") {
    a.check(name, {"name"});
    if (a.pos.empty() || !a.pos[0].is_str()) fail("attr: the attribute name must be a string");
    if (v.is_undefined()) raise_undefined(v);
    if (v.kind == Kind::Dict && !has_python_attr(v, a.pos[0].s()))
      return Value::undefined("'dict object' has no attribute " + py_repr_str(a.pos[0].s()));
    return get_attr(v, a.pos[0].s());
  }
  fail("unsupported filter \"" + name + "\"");
}

}  // namespace prefopt::data::jinja
