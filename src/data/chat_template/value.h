// The values a chat template computes with, modelled on the Python objects jinja2 hands a template: None,
// bool, int, float, str, list, tuple, dict (insertion-ordered), jinja2's Undefined, namespace(), generators
// (what select/map/... return), callables (macros, built-ins, bound methods) and the loop object. Also the
// Python semantics over them: truth, ==, <, str(), repr(), len(), iteration, `in` and the operators
// (attribute and item lookup are in builtins.h).
// Never mutates a list or dict once built (the sandbox forbids it), so values share their payloads freely;
// only namespace objects, generators and loop objects change, and those are made per render.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefopt::data::jinja {

/// An error while parsing or rendering; `line` 0 until a statement or expression with a line catches it.
struct Fault {
  std::string message;
  int line = 0;
};
[[noreturn]] void fail(std::string message);

enum class Kind : uint8_t {
  Undefined,
  None,
  Bool,
  Int,
  Float,
  Str,
  List,
  Tuple,
  Dict,
  Namespace,
  Generator,
  Callable,
  Loop
};

struct Object {
  virtual ~Object() = default;
  /// str() of objects that have no Python-data form (macros, functions, the loop object).
  virtual std::string repr() const { return "<object>"; }
};

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::shared_ptr<Object> obj;

  static Value undefined(std::string hint);
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value str(std::string s);
  static Value list(std::vector<Value> items);
  static Value tuple(std::vector<Value> items);
  /// A generator over fixed items.
  static Value generator(std::vector<Value> items);
  /// A lazy generator: `pull` stores the next item and returns true, or returns false when exhausted. Nothing
  /// runs until something iterates it, as with a Python generator.
  static Value lazy(std::function<bool(Value&)> pull);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_str() const { return kind == Kind::Str; }
  bool is_int() const { return kind == Kind::Int; }  ///< int proper; bools are Kind::Bool
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_sequence() const { return kind == Kind::List || kind == Kind::Tuple; }
  const std::string& s() const;             ///< Kind::Str
  const std::vector<Value>& items() const;  ///< Kind::List / Kind::Tuple
  const struct DictObj& dict() const;       ///< Kind::Dict
  /// The number as a double (bool, int, float).
  double as_double() const { return kind == Kind::Float ? f : static_cast<double>(kind == Kind::Bool ? b : i); }
  /// The number as an int (bool, int); callers check the kind first.
  int64_t as_int() const { return kind == Kind::Bool ? (b ? 1 : 0) : i; }
};

struct StrObj final : Object {
  std::string s;
};
struct ListObj final : Object {
  std::vector<Value> items;
  /// "" for a list / tuple; "dict_items" / "dict_keys" / "dict_values" for dict views (repr differs);
  /// "group" for groupby's (grouper, list) tuples (which have those two attributes).
  std::string tag;
};
/// v (a fresh list or tuple) with ListObj::tag set.
Value tagged(Value v, std::string tag);
/// An insertion-ordered dict, as Python's. Lookups compare keys with Python's == (1 == 1.0 == True).
struct DictObj final : Object {
  std::vector<std::pair<Value, Value>> entries;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  /// Inserts, or replaces the value in place (the key keeps its position).
  void set(const Value& key, Value value);
};
Value make_dict(DictObj d);

/// jinja2's Undefined: `hint` is the message of the UndefinedError raised when it is used
/// ("'foo' is undefined", "'dict object' has no attribute 'x'", ...).
struct UndefinedObj final : Object {
  std::string hint;
};

/// namespace(...): the one mutable mapping a template has ({% set ns.x = ... %}).
struct NamespaceObj final : Object {
  DictObj attrs;
};

/// A one-shot lazy iterator (jinja2's select/map/... return generators): iterating consumes it, len() fails,
/// and it is always true.
struct GeneratorObj final : Object {
  std::function<bool(Value&)> pull;
  /// The next item into `out`; false once exhausted (and forever after).
  bool next(Value& out);
};

[[noreturn]] void raise_undefined(const Value& v);

bool truthy(const Value& v);
bool py_eq(const Value& a, const Value& b);
/// a < b as Python compares; a TypeError-style fault for unorderable types.
bool py_less(const Value& a, const Value& b);
/// str(v): what {{ v }} prints (Undefined prints nothing).
std::string py_str(const Value& v);
void append_str(std::string& out, const Value& v);
std::string py_repr(const Value& v);
/// repr(float): the shortest text that round-trips, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string float_repr(double d);
/// type(v).__name__ ("str", "int", "dict", "NoneType", ...).
std::string type_name(const Value& v);
/// jinja2's object_type_repr: "dict object", "None", ... as used in undefined hints.
std::string object_type_repr(const Value& v);
/// The items a for loop or a filter iterates: a list's items, a dict's keys, a string's characters, the rest of
/// a generator; Undefined gives nothing; anything else is a "'int' object is not iterable" fault.
std::vector<Value> iterate(const Value& v);
/// len(v): code points of a str, items of a list / tuple / dict; Undefined is 0.
int64_t py_len(const Value& v);
/// A str's code points as one-character strs.
std::vector<Value> str_chars(const std::string& s);

/// Python's `in`: substring, list membership, dict key; Undefined contains nothing.
bool py_contains(const Value& container, const Value& item);

/// Arithmetic and concatenation as Python does them on these types (op is "+", "-", "*", "/", "//", "%", "**").
Value binary_op(const std::string& op, const Value& a, const Value& b);
Value negate(const Value& v);

}  // namespace prefopt::data::jinja
