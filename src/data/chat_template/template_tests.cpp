// jinja2's built-in tests (`x is defined`, `x is string`, select("equalto", ...), ...), each as jinja2 3.1's
// tests.py defines it over Python objects. Never raises for a known test except where Python would (odd on a
// string, a comparison between unorderable types).
#include <set>

#include "interp.h"
#include "text.h"

namespace prefopt::data::jinja {
namespace {

const std::set<std::string> kTests = {
    "odd",     "even",   "divisibleby", "defined",  "undefined", "filter", "test",    "none",
    "boolean", "false",  "true",        "integer",  "float",     "lower",  "upper",   "string",
    "mapping", "number", "sequence",    "iterable", "callable",  "sameas", "escaped", "in",
    "==",      "eq",     "equalto",     "!=",       "ne",        ">",      "gt",      "greaterthan",
    "ge",      ">=",     "<",           "lt",       "lessthan",  "<=",     "le"};

const Value& one_arg(const Args& a, const std::string& test) {
  if (a.pos.size() + a.kw.size() != 1) fail("test '" + test + "' takes exactly one argument");
  return a.pos.empty() ? a.kw[0].second : a.pos[0];
}

bool ordered(const std::string& op, const Value& x, const Value& y) {
  if (x.is_undefined()) raise_undefined(x);
  if (y.is_undefined()) raise_undefined(y);
  const bool ok =
      (x.is_number() && y.is_number()) || (x.is_str() && y.is_str()) || (x.kind == y.kind && x.is_sequence());
  if (!ok) fail("'" + op + "' not supported between instances of '" + type_name(x) + "' and '" + type_name(y) + "'");
  if (op == "<") return py_less(x, y);
  if (op == ">") return py_less(y, x);
  if (op == "<=") return !py_less(y, x);
  return !py_less(x, y);
}

}  // namespace

bool jinja_has_test(const std::string& name) { return kTests.count(name) > 0; }

bool apply_test(Renderer&, const std::string& name, const Value& v, const Args& a) {
  if (!kTests.count(name)) fail("No test named '" + name + "' found.");
  static const std::set<std::string> kWithArgument = {
      "divisibleby", "sameas",      "in", "==", "eq", "equalto", "!=",       "ne", ">",
      "gt",          "greaterthan", "ge", ">=", "<",  "lt",      "lessthan", "<=", "le"};
  if (!kWithArgument.count(name) && (!a.pos.empty() || !a.kw.empty()))
    fail("test_" + name + "() takes 1 positional argument but " + std::to_string(1 + a.pos.size() + a.kw.size()) +
         " were given");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == Kind::Bool;
  if (name == "true") return v.kind == Kind::Bool && v.b;
  if (name == "false") return v.kind == Kind::Bool && !v.b;
  if (name == "integer") return v.kind == Kind::Int;
  if (name == "float") return v.kind == Kind::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_str();
  if (name == "mapping") return v.kind == Kind::Dict;
  if (name == "lower") return py_islower(py_str(v));
  if (name == "upper") return py_isupper(py_str(v));
  // Python's len() + __getitem__: str, list, tuple, dict, and jinja2's Undefined.
  if (name == "sequence") return v.is_str() || v.is_sequence() || v.kind == Kind::Dict || v.is_undefined();
  if (name == "iterable")
    return v.is_str() || v.is_sequence() || v.kind == Kind::Dict || v.kind == Kind::Generator || v.is_undefined() ||
           v.kind == Kind::Loop;
  if (name == "callable") return v.kind == Kind::Callable || v.is_undefined() || v.kind == Kind::Loop;
  if (name == "escaped") return false;  // only markup-safe strings, which this engine never builds
  if (name == "filter") return v.is_str() && jinja_has_filter(v.s());
  if (name == "test") return v.is_str() && jinja_has_test(v.s());
  if (name == "odd" || name == "even" || name == "divisibleby") {
    const Value divisor = name == "divisibleby" ? one_arg(a, name) : Value::integer(2);
    const Value rem = binary_op("%", v, divisor);
    return py_eq(rem, Value::integer(name == "odd" ? 1 : 0));
  }
  if (name == "sameas") {
    const Value& o = one_arg(a, name);
    if (v.kind != o.kind) return false;
    switch (v.kind) {
      case Kind::None:
      case Kind::Undefined: return v.kind == Kind::None || v.obj == o.obj;
      case Kind::Bool: return v.b == o.b;
      case Kind::Int: return v.i == o.i && v.i >= -5 && v.i <= 256;  // CPython's cached small ints
      default: return v.obj == o.obj;
    }
  }
  if (name == "in") return py_contains(one_arg(a, name), v);
  const Value& o = one_arg(a, name);
  if (name == "==" || name == "eq" || name == "equalto") return py_eq(v, o);
  if (name == "!=" || name == "ne") return !py_eq(v, o);
  if (name == ">" || name == "gt" || name == "greaterthan") return ordered(">", v, o);
  if (name == ">=" || name == "ge") return ordered(">=", v, o);
  if (name == "<" || name == "lt" || name == "lessthan") return ordered("<", v, o);
  return ordered("<=", v, o);  // "<=", "le"
}

}  // namespace prefopt::data::jinja
