// What the renderer offers templates besides syntax: jinja2's filters and tests, the Python methods of str /
// dict / list, attribute and item lookup with jinja2's sandbox rules, printf-style `%` formatting, and the
// globals transformers adds (raise_exception, strftime_now, namespace, dict) plus range. Declared here,
// implemented in filters.cpp, seq_filters.cpp, template_tests.cpp, methods.cpp and globals.cpp; never parses
// or walks the template itself.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "value.h"

namespace prefopt::data::jinja {

class Renderer;

/// Evaluated call arguments.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;

  const Value* kwarg(const std::string& name) const;
  /// Parameter `index` / `name` of a Python signature, or nullptr when not given.
  const Value* get(std::size_t index, const std::string& name) const;
  /// Parameter `index` / `name` as a truth value (absent: false).
  bool flag(std::size_t index, const std::string& name) const;
  /// Parameter `index` / `name` as an int (absent: `dflt`; a float is truncated; anything else a fault).
  int64_t integer(std::size_t index, const std::string& name, int64_t dflt) const;
  /// Faults on keyword arguments not in `names` and on more than names.size() positional ones.
  void check(const std::string& callee, const std::vector<std::string>& names) const;
};

/// Whether jinja2 (as transformers configures it) has a filter / test of that name; the parser rejects
/// others as jinja2's compiler does.
bool jinja_has_filter(const std::string& name);
bool jinja_has_test(const std::string& name);

Value apply_filter(Renderer& r, const std::string& name, const Value& input, const Args& args);
/// The sequence filters (seq_filters.cpp), which apply_filter hands over to.
Value apply_seq_filter(Renderer& r, const std::string& name, const Value& input, const Args& args);
bool apply_test(Renderer& r, const std::string& name, const Value& input, const Args& args);

/// obj.name and obj[key] with jinja2's sandboxed lookup: dict keys, Python methods (bound), namespace and
/// loop attributes; a miss is an Undefined carrying jinja2's hint; calling a mutating method is a Fault.
Value get_attr(const Value& obj, const std::string& name);
/// Whether obj.name is a Python attribute (a method, a namespace or loop attribute), not a dict key.
bool has_python_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

/// Calls a bound method (a Callable made by get_attr).
Value call_method(Renderer& r, const Value& self, const std::string& name, const Args& args);
/// The globals every template sees (raise_exception, strftime_now, namespace, dict, range, ...).
std::vector<std::pair<std::string, Value>> make_globals();
Value call_global(Renderer& r, const std::string& name, const Args& args);

/// Python's `fmt % args` for str (printf-style: %s %r %d %i %f %e %g %x %o %c %%, flags, width, precision,
/// %(name)s with a dict).
Value printf_format(const std::string& fmt, const Value& args);
/// Python's str.format with {} / {0} / {name} fields and simple format specs.
std::string str_format(const std::string& fmt, const Args& args);

}  // namespace prefopt::data::jinja
