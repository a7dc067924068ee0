// Python semantics over the template's values (see value.h): truth, ==, <, str(), repr(), len(), iteration,
// `in`, and the arithmetic operators with Python's results and TypeError texts. Never converts a value silently
// where Python would raise: a mismatch is a Fault naming the Python types, as Python's message does.
#include "value.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "builtins.h"
#include "text.h"

namespace prefopt::data::jinja {

void fail(std::string message) { throw Fault{std::move(message), 0}; }

Value Value::undefined(std::string hint) {
  Value v;
  auto u = std::make_shared<UndefinedObj>();
  u->hint = std::move(hint);
  v.obj = std::move(u);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::Int;
  v.i = x;
  return v;
}
Value Value::number(double x) {
  Value v;
  v.kind = Kind::Float;
  v.f = x;
  return v;
}
Value Value::str(std::string s) {
  Value v;
  v.kind = Kind::Str;
  auto o = std::make_shared<StrObj>();
  o->s = std::move(s);
  v.obj = std::move(o);
  return v;
}
Value Value::list(std::vector<Value> items) {
  Value v;
  v.kind = Kind::List;
  auto o = std::make_shared<ListObj>();
  o->items = std::move(items);
  v.obj = std::move(o);
  return v;
}
Value Value::tuple(std::vector<Value> items) {
  Value v = list(std::move(items));
  v.kind = Kind::Tuple;
  return v;
}
Value Value::generator(std::vector<Value> items) {
  auto shared = std::make_shared<std::vector<Value>>(std::move(items));
  std::size_t pos = 0;
  return lazy([shared, pos](Value& out) mutable {
    if (pos >= shared->size()) return false;
    out = (*shared)[pos++];
    return true;
  });
}
Value Value::lazy(std::function<bool(Value&)> pull) {
  Value v;
  v.kind = Kind::Generator;
  auto o = std::make_shared<GeneratorObj>();
  o->pull = std::move(pull);
  v.obj = std::move(o);
  return v;
}

bool GeneratorObj::next(Value& out) {
  if (!pull) return false;
  if (pull(out)) return true;
  pull = nullptr;  // exhausted: drop what the producer holds
  return false;
}
Value tagged(Value v, std::string tag) {
  static_cast<ListObj*>(v.obj.get())->tag = std::move(tag);
  return v;
}

Value make_dict(DictObj d) {
  Value v;
  v.kind = Kind::Dict;
  v.obj = std::make_shared<DictObj>(std::move(d));
  return v;
}

const std::string& Value::s() const { return static_cast<const StrObj*>(obj.get())->s; }
const std::vector<Value>& Value::items() const { return static_cast<const ListObj*>(obj.get())->items; }
const DictObj& Value::dict() const { return *static_cast<const DictObj*>(obj.get()); }

const Value* DictObj::find(const Value& key) const {
  if (key.is_str()) return find(std::string_view(key.s()));
  for (const auto& [k, v] : entries)
    if (py_eq(k, key)) return &v;
  return nullptr;
}
const Value* DictObj::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k.is_str() && k.s() == key) return &v;
  return nullptr;
}
void DictObj::set(const Value& key, Value value) {
  for (auto& [k, v] : entries) {
    if (py_eq(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(key, std::move(value));
}

void raise_undefined(const Value& v) {
  const auto* u = static_cast<const UndefinedObj*>(v.obj.get());
  fail(u ? u->hint : "undefined value");
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return v.b;
    case Kind::Int: return v.i != 0;
    case Kind::Float: return v.f != 0.0;
    case Kind::Str: return !v.s().empty();
    case Kind::List:
    case Kind::Tuple: return !v.items().empty();
    case Kind::Dict: return !v.dict().entries.empty();
    default: return true;  // objects, generators (even exhausted ones), callables
  }
}

bool py_eq(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Kind::Float && b.kind != Kind::Float) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::Str: return a.s() == b.s();
    case Kind::List:
    case Kind::Tuple: {
      const auto &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (std::size_t k = 0; k < x.size(); ++k)
        if (!py_eq(x[k], y[k])) return false;
      return true;
    }
    case Kind::Dict: {
      const auto &x = a.dict(), &y = b.dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !py_eq(v, *other)) return false;
      }
      return true;
    }
    default: return a.obj == b.obj;
  }
}

bool py_less(const Value& a, const Value& b) {
  if (a.is_undefined()) raise_undefined(a);
  if (b.is_undefined()) raise_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.kind != Kind::Float && b.kind != Kind::Float) return a.as_int() < b.as_int();
    return a.as_double() < b.as_double();
  }
  if (a.is_str() && b.is_str()) return a.s() < b.s();  // UTF-8 byte order is code-point order
  if (a.kind == b.kind && a.is_sequence()) {
    const auto &x = a.items(), &y = b.items();
    for (std::size_t k = 0; k < x.size() && k < y.size(); ++k)
      if (!py_eq(x[k], y[k])) return py_less(x[k], y[k]);
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // e.g. "-1.2345e+17": the shortest digits that round-trip
  std::string out;
  std::size_t p = 0;
  if (sci[0] == '-') out.push_back('-'), p = 1;
  const std::size_t epos = sci.find('e');
  std::string digits;
  for (std::size_t k = p; k < epos; ++k)
    if (sci[k] != '.') digits.push_back(sci[k]);
  const int exp = std::atoi(sci.c_str() + epos + 1);
  if (exp >= -4 && exp < 16) {  // Python's repr switches to exponents outside this
    if (exp >= 0) {
      const std::size_t int_len = static_cast<std::size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        out += digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    } else {
      out += "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
    }
    return out;
  }
  out.push_back(digits[0]);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char e[16];
  std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return out + e;
}

namespace {

void append_repr(std::string& out, const Value& v, int depth);

void append_items(std::string& out, const std::vector<Value>& items, int depth) {
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (k) out += ", ";
    append_repr(out, items[k], depth + 1);
  }
}

void append_dict(std::string& out, const DictObj& d, int depth) {
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : d.entries) {
    if (!first) out += ", ";
    first = false;
    append_repr(out, k, depth + 1);
    out += ": ";
    append_repr(out, v, depth + 1);
  }
  out.push_back('}');
}

void append_repr(std::string& out, const Value& v, int depth) {
  if (depth > 200) fail("value nested too deeply to print");
  switch (v.kind) {
    case Kind::Undefined: out += "Undefined"; return;
    case Kind::Str: out += py_repr_str(v.s()); return;
    case Kind::List: {
      const std::string& tag = static_cast<const ListObj*>(v.obj.get())->tag;
      out += tag.empty() ? "[" : tag + "([";
      append_items(out, v.items(), depth);
      out += tag.empty() ? "]" : "])";
      return;
    }
    case Kind::Tuple:
      out.push_back('(');
      append_items(out, v.items(), depth);
      if (v.items().size() == 1) out.push_back(',');
      out.push_back(')');
      return;
    case Kind::Dict: append_dict(out, v.dict(), depth); return;
    case Kind::Namespace:
      out += "<Namespace ";
      append_dict(out, static_cast<const NamespaceObj*>(v.obj.get())->attrs, depth);
      out += ">";
      return;
    default: append_str(out, v);
  }
}

}  // namespace

void append_str(std::string& out, const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return;
    case Kind::None: out += "None"; return;
    case Kind::Bool: out += v.b ? "True" : "False"; return;
    case Kind::Int: out += std::to_string(v.i); return;
    case Kind::Float: out += float_repr(v.f); return;
    case Kind::Str: out += v.s(); return;
    case Kind::Generator:
      // Python prints "<generator object ... at 0x...>", an address no other run reproduces.
      fail("cannot print a generator (select, map, unique, ... give one): pipe it through |list first");
    case Kind::Callable:
    case Kind::Loop: out += v.obj->repr(); return;
    default: append_repr(out, v, 0);
  }
}

std::string py_str(const Value& v) {
  if (v.is_str()) return v.s();
  std::string out;
  append_str(out, v);
  return out;
}

std::string py_repr(const Value& v) {
  std::string out;
  append_repr(out, v, 0);
  return out;
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Namespace: return "TemplateNamespace";
    case Kind::Generator: return "generator";
    case Kind::Callable: return "function";
    case Kind::Loop: return "LoopContext";
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.kind == Kind::Namespace) return "transformers.utils.chat_template_utils.TemplateNamespace object";
  if (v.kind == Kind::Loop) return "jinja2.runtime.LoopContext object";
  if (v.kind == Kind::Undefined) return "jinja2.runtime.Undefined object";
  return type_name(v) + " object";
}

std::vector<Value> str_chars(const std::string& s) {
  std::vector<Value> out;
  if (is_ascii(s)) {
    for (char c : s) out.push_back(Value::str(std::string(1, c)));
    return out;
  }
  for (char32_t c : decode_utf8(s)) {
    std::string one;
    append_utf8(one, c);
    out.push_back(Value::str(std::move(one)));
  }
  return out;
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return {};
    case Kind::List:
    case Kind::Tuple: return v.items();
    case Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& e : v.dict().entries) keys.push_back(e.first);
      return keys;
    }
    case Kind::Str: return str_chars(v.s());
    case Kind::Generator: {
      auto* g = static_cast<GeneratorObj*>(v.obj.get());
      std::vector<Value> rest;
      Value item;
      while (g->next(item)) rest.push_back(std::move(item));
      return rest;
    }
    default: fail("'" + type_name(v) + "' object is not iterable");
  }
}

int64_t py_len(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return 0;
    case Kind::Str: return static_cast<int64_t>(utf8_length(v.s()));
    case Kind::List:
    case Kind::Tuple: return static_cast<int64_t>(v.items().size());
    case Kind::Dict: return static_cast<int64_t>(v.dict().entries.size());
    case Kind::Namespace:
      return static_cast<int64_t>(static_cast<const NamespaceObj*>(v.obj.get())->attrs.entries.size());
    default: fail("object of type '" + type_name(v) + "' has no len()");
  }
}

bool py_contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::Str:
      if (!item.is_str()) fail("'in <string>' requires string as left operand, not " + type_name(item));
      return container.s().find(item.s()) != std::string::npos;
    case Kind::List:
    case Kind::Tuple:
      for (const Value& x : container.items())
        if (py_eq(x, item)) return true;
      return false;
    case Kind::Dict: return container.dict().find(item) != nullptr;
    case Kind::Undefined: return false;
    case Kind::Generator: {
      auto* g = static_cast<GeneratorObj*>(container.obj.get());
      Value x;
      while (g->next(x))
        if (py_eq(x, item)) return true;
      return false;
    }
    default: fail("argument of type '" + type_name(container) + "' is not iterable");
  }
}

namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

void overflow_check(bool overflow) {
  if (overflow) fail("integer overflow: the result does not fit in 64 bits (Python would use a big int)");
}

// Python's float floor division and modulo (Objects/floatobject.c float_divmod).
void float_divmod(double vx, double wx, double& div, double& mod) {
  if (wx == 0.0) fail("float floor division by zero");
  mod = std::fmod(vx, wx);
  div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0.0) {
    double floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
    div = floordiv;
  } else {
    div = std::copysign(0.0, vx / wx);
  }
}

constexpr std::size_t kMaxString = std::size_t(1) << 28;  // 256 MiB: a template should never build more

Value repeat(const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_str() ? Value::str("") : (seq.kind == Kind::Tuple ? Value::tuple({}) : Value::list({}));
  if (seq.is_str()) {
    if (seq.s().size() * static_cast<std::size_t>(n) > kMaxString) fail("string repetition too large");
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.s();
    return Value::str(std::move(out));
  }
  if (seq.items().size() * static_cast<std::size_t>(n) > kMaxString / 64) fail("list repetition too large");
  std::vector<Value> out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return seq.kind == Kind::Tuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

Value int_pow(int64_t base, int64_t exp) {
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) overflow_check(__builtin_mul_overflow(result, base, &result));
    exp >>= 1;
    if (exp) overflow_check(__builtin_mul_overflow(base, base, &base));
  }
  return Value::integer(result);
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) raise_undefined(a);
  if (op == "%" && a.is_str()) return printf_format(a.s(), b);  // str % x formats even an Undefined x
  if (b.is_undefined()) raise_undefined(b);
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && a.kind != Kind::Float && b.kind != Kind::Float;
  int64_t r = 0;
  if (op == "+") {
    if (ints) {
      overflow_check(__builtin_add_overflow(a.as_int(), b.as_int(), &r));
      return Value::integer(r);
    }
    if (nums) return Value::number(a.as_double() + b.as_double());
    if (a.is_str() && b.is_str()) {
      if (a.s().size() + b.s().size() > kMaxString) fail("string too large");
      return Value::str(a.s() + b.s());
    }
    if (a.kind == b.kind && a.is_sequence()) {
      std::vector<Value> out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return a.kind == Kind::Tuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
    if (a.is_str() || a.is_sequence())
      fail("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      overflow_check(__builtin_sub_overflow(a.as_int(), b.as_int(), &r));
      return Value::integer(r);
    }
    if (nums) return Value::number(a.as_double() - b.as_double());
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      overflow_check(__builtin_mul_overflow(a.as_int(), b.as_int(), &r));
      return Value::integer(r);
    }
    if (nums) return Value::number(a.as_double() * b.as_double());
    const bool a_int = a.kind == Kind::Int || a.kind == Kind::Bool, b_int = b.kind == Kind::Int || b.kind == Kind::Bool;
    if ((a.is_str() || a.is_sequence()) && b_int) return repeat(a, b.as_int());
    if ((b.is_str() || b.is_sequence()) && a_int) return repeat(b, a.as_int());
    if (a.is_str() || a.is_sequence()) fail("can't multiply sequence by non-int of type '" + type_name(b) + "'");
    unsupported(op, a, b);
  }
  if (op == "/") {
    if (!nums) unsupported(op, a, b);
    if (b.as_double() == 0.0) fail("division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (!nums) unsupported(op, a, b);
    if (ints) {
      const int64_t x = a.as_int(), y = b.as_int();
      if (y == 0) fail(op == "%" ? "integer modulo by zero" : "integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) fail("integer overflow: the result does not fit in 64 bits");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) m += y, q -= 1;
      return Value::integer(op == "%" ? m : q);
    }
    double div = 0, mod = 0;
    if (b.as_double() == 0.0) fail(op == "%" ? "float modulo" : "float floor division by zero");
    float_divmod(a.as_double(), b.as_double(), div, mod);
    return Value::number(op == "%" ? mod : div);
  }
  if (op == "**") {
    if (!nums) unsupported("** or pow()", a, b);
    if (ints && b.as_int() >= 0) return int_pow(a.as_int(), b.as_int());
    if (a.as_double() == 0.0 && b.as_double() < 0) fail("0.0 cannot be raised to a negative power");
    const double result = std::pow(a.as_double(), b.as_double());
    if (std::isinf(result) && std::isfinite(a.as_double()) && std::isfinite(b.as_double()))
      fail("(34, 'Numerical result out of range')");  // Python's OverflowError for float ** float
    return Value::number(result);
  }
  fail("unsupported operator \"" + op + "\"");
}

Value negate(const Value& v) {
  if (v.is_undefined()) raise_undefined(v);
  if (v.kind == Kind::Float) return Value::number(-v.f);
  if (v.is_number()) {
    if (v.as_int() == INT64_MIN) fail("integer overflow: the result does not fit in 64 bits");
    return Value::integer(-v.as_int());
  }
  fail("bad operand type for unary -: '" + type_name(v) + "'");
}

}  // namespace prefopt::data::jinja
