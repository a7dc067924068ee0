// Attribute, item and slice lookup with jinja2's sandboxed rules, and the Python methods of str, dict, list
// and the loop object that templates call (see builtins.h). Methods that would mutate a list or dict resolve
// to an Undefined whose use raises the sandbox's SecurityError text; Python methods this engine lacks raise
// "unsupported method" when called. Never mutates a value.
#include <algorithm>
#include <set>

#include "interp.h"
#include "text.h"

namespace prefopt::data::jinja {

const Value* Args::kwarg(const std::string& name) const {
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

const Value* Args::get(std::size_t index, const std::string& name) const {
  if (index < pos.size()) return &pos[index];
  return kwarg(name);
}

bool Args::flag(std::size_t index, const std::string& name) const {
  const Value* v = get(index, name);
  return v && truthy(*v);
}

int64_t Args::integer(std::size_t index, const std::string& name, int64_t dflt) const {
  const Value* v = get(index, name);
  if (!v) return dflt;
  if (v->kind == Kind::Float) return static_cast<int64_t>(v->f);
  if (v->kind != Kind::Int && v->kind != Kind::Bool)
    fail("'" + type_name(*v) + "' object cannot be interpreted as an integer");
  return v->as_int();
}

void Args::check(const std::string& callee, const std::vector<std::string>& names) const {
  if (pos.size() > names.size())
    fail(callee + "() takes at most " + std::to_string(names.size()) + " argument(s) (" + std::to_string(pos.size()) +
         " given)");
  for (const auto& [k, v] : kw) {
    const auto it = std::find(names.begin(), names.end(), k);
    if (it == names.end()) fail(callee + "() got an unexpected keyword argument '" + k + "'");
    if (static_cast<std::size_t>(it - names.begin()) < pos.size())
      fail(callee + "() got multiple values for argument '" + k + "'");
  }
}

namespace {

const std::set<std::string> kStrMethods = {
    "capitalize",   "casefold",   "center",    "count",       "encode",    "endswith",     "expandtabs",   "find",
    "format",       "format_map", "index",     "isalnum",     "isalpha",   "isascii",      "isdecimal",    "isdigit",
    "isidentifier", "islower",    "isnumeric", "isprintable", "isspace",   "istitle",      "isupper",      "join",
    "ljust",        "lower",      "lstrip",    "maketrans",   "partition", "removeprefix", "removesuffix", "replace",
    "rfind",        "rindex",     "rjust",     "rpartition",  "rsplit",    "rstrip",       "split",        "splitlines",
    "startswith",   "strip",      "swapcase",  "title",       "translate", "upper",        "zfill"};
const std::set<std::string> kDictMethods = {"copy", "fromkeys", "get", "items", "keys", "values"};
const std::set<std::string> kDictUnsafe = {"clear", "pop", "popitem", "setdefault", "update"};
const std::set<std::string> kListMethods = {"copy", "count", "index"};
const std::set<std::string> kListUnsafe = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};

Value bound(const Value& self, const std::string& name) {
  CallableObj c;
  c.type = CallableObj::Type::Method;
  c.name = name;
  c.self = self;
  return make_callable(std::move(c));
}

Value no_attribute(const Value& obj, const std::string& name) {
  return Value::undefined("'" + object_type_repr(obj) + "' has no attribute " + py_repr_str(name));
}

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute " + py_repr_str(name) + " of '" + type_name(obj) +
                          "' object is unsafe.");
}

// The Python attribute `name` of obj, or nullopt-like Undefined marker via `found`.
Value python_attr(const Value& obj, const std::string& name, bool& found) {
  found = true;
  switch (obj.kind) {
    case Kind::Str:
      if (kStrMethods.count(name)) return bound(obj, name);
      break;
    case Kind::Dict:
      if (kDictMethods.count(name)) return bound(obj, name);
      if (kDictUnsafe.count(name)) return unsafe(obj, name);
      break;
    case Kind::List:
      if (kListMethods.count(name)) return bound(obj, name);
      if (kListUnsafe.count(name)) return unsafe(obj, name);
      break;
    case Kind::Tuple:
      if (name == "count" || name == "index") return bound(obj, name);
      if (static_cast<const ListObj*>(obj.obj.get())->tag == "group" && (name == "grouper" || name == "list"))
        return obj.items()[name == "grouper" ? 0 : 1];
      break;
    case Kind::Namespace:
      if (const Value* v = static_cast<const NamespaceObj*>(obj.obj.get())->attrs.find(std::string_view(name)))
        return *v;
      break;
    case Kind::Loop: {
      const auto& l = *static_cast<const LoopObj*>(obj.obj.get());
      const int64_t n = static_cast<int64_t>(l.items->size()), k = l.index0;
      if (name == "index") return Value::integer(k + 1);
      if (name == "index0") return Value::integer(k);
      if (name == "revindex") return Value::integer(n - k);
      if (name == "revindex0") return Value::integer(n - k - 1);
      if (name == "first") return Value::boolean(k == 0);
      if (name == "last") return Value::boolean(k == n - 1);
      if (name == "length") return Value::integer(n);
      if (name == "depth") return Value::integer(1);
      if (name == "depth0") return Value::integer(0);
      if (name == "previtem")
        return k > 0 ? (*l.items)[static_cast<std::size_t>(k - 1)] : Value::undefined("there is no previous item");
      if (name == "nextitem")
        return k + 1 < n ? (*l.items)[static_cast<std::size_t>(k + 1)] : Value::undefined("there is no next item");
      if (name == "cycle" || name == "changed") return bound(obj, name);
      break;
    }
    default: break;
  }
  found = false;
  return Value();
}

}  // namespace

bool has_python_attr(const Value& obj, const std::string& name) {
  bool found = false;
  python_attr(obj, name, found);
  return found;
}

Value get_attr(const Value& obj, const std::string& name) {
  bool found = false;
  Value v = python_attr(obj, name, found);
  if (found) return v;
  if (obj.kind == Kind::Dict)
    if (const Value* item = obj.dict().find(std::string_view(name))) return *item;
  return no_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.kind) {
    case Kind::Dict:
      if (const Value* v = obj.dict().find(key)) return *v;
      break;
    case Kind::List:
    case Kind::Tuple:
    case Kind::Str: {
      if (key.kind != Kind::Int && key.kind != Kind::Bool) break;
      const int64_t n =
          obj.is_str() ? static_cast<int64_t>(utf8_length(obj.s())) : static_cast<int64_t>(obj.items().size());
      int64_t k = key.as_int();
      if (k < 0) k += n;
      if (k < 0 || k >= n) break;
      if (!obj.is_str()) return obj.items()[static_cast<std::size_t>(k)];
      if (is_ascii(obj.s())) return Value::str(obj.s().substr(static_cast<std::size_t>(k), 1));
      std::string one;
      append_utf8(one, decode_utf8(obj.s())[static_cast<std::size_t>(k)]);
      return Value::str(std::move(one));
    }
    default: break;
  }
  if (key.is_str()) {
    bool found = false;
    Value v = python_attr(obj, key.s(), found);
    if (found) return v;
    return no_attribute(obj, key.s());
  }
  return Value::undefined(object_type_repr(obj) + " has no element " + py_repr(key));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  auto index = [](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    if (v.kind != Kind::Int && v.kind != Kind::Bool)
      fail("slice indices must be integers or None or have an __index__ method");
    return v.as_int();
  };
  const int64_t st = index(step, 1);
  if (st == 0) fail("slice step cannot be zero");
  // jinja2 slices with Python's own [a:b:c] (no undefined fallback), so anything but a sequence raises
  if (obj.kind == Kind::Dict) fail("unhashable type: 'slice'");
  if (!obj.is_str() && !obj.is_sequence()) fail("'" + type_name(obj) + "' object is not subscriptable");
  const std::u32string cps = obj.is_str() ? decode_utf8(obj.s()) : std::u32string();
  const int64_t n = obj.is_str() ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(obj.items().size());
  auto adjust = [&](const Value& v, bool is_start) {
    int64_t k = index(v, 0);
    if (v.is_none()) return st > 0 ? (is_start ? 0 : n) : (is_start ? n - 1 : -1);
    if (k < 0) {
      k += n;
      if (k < 0) k = st < 0 ? -1 : 0;
    } else if (k >= n) {
      k = st < 0 ? n - 1 : n;
    }
    return k;
  };
  const int64_t b = adjust(start, true), e = adjust(stop, false);
  std::vector<int64_t> picks;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) picks.push_back(k);
  if (obj.is_str()) {
    std::u32string out;
    for (int64_t k : picks) out.push_back(cps[static_cast<std::size_t>(k)]);
    return Value::str(encode_utf8(out));
  }
  std::vector<Value> out;
  for (int64_t k : picks) out.push_back(obj.items()[static_cast<std::size_t>(k)]);
  return obj.kind == Kind::Tuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

namespace {

std::string need_str(const Value* v, const std::string& what) {
  if (!v->is_str()) fail(what + " must be str, not " + type_name(*v));
  return v->s();
}

std::optional<std::string> opt_str(const Value* v, const std::string& what) {
  if (!v || v->is_none()) return std::nullopt;
  return need_str(v, what);
}

int64_t need_int(const Value* v) {
  if (v->kind != Kind::Int && v->kind != Kind::Bool)
    fail("'" + type_name(*v) + "' object cannot be interpreted as an integer");
  return v->as_int();
}

bool affix_match(const std::string& s, const Value& arg, bool prefix, const std::string& callee) {
  auto one = [&](const Value& a) {
    if (!a.is_str()) fail(callee + " first arg must be str or a tuple of str, not " + type_name(a));
    const std::string& p = a.s();
    if (p.size() > s.size()) return false;
    return prefix ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  if (arg.kind == Kind::Tuple) {
    for (const Value& a : arg.items())
      if (one(a)) return true;
    return false;
  }
  return one(arg);
}

Value str_list(std::vector<std::string> parts) {
  std::vector<Value> out;
  for (auto& p : parts) out.push_back(Value::str(std::move(p)));
  return Value::list(std::move(out));
}

std::string pad(const std::string& s, int64_t width, const std::string& fill,
                int where) {  // -1 left, 0 center, 1 right
  const int64_t len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return s;
  const int64_t total = width - len;
  int64_t left = where < 0 ? 0 : where > 0 ? total : total / 2 + (total & width & 1);
  std::string out;
  for (int64_t k = 0; k < left; ++k) out += fill;
  out += s;
  for (int64_t k = 0; k < total - left; ++k) out += fill;
  return out;
}

template <typename Pred>
bool all_cps(const std::string& s, Pred p) {
  const std::u32string cps = decode_utf8(s);
  return !cps.empty() && std::all_of(cps.begin(), cps.end(), p);
}

Value str_method(const std::string& s, const std::string& name, const Args& a) {
  const std::string callee = "str." + name;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    a.check(callee, {"chars"});
    return Value::str(py_strip(s, opt_str(a.get(0, "chars"), "chars"), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    a.check(callee, {"sep", "maxsplit"});
    const auto sep = opt_str(a.get(0, "sep"), "sep");
    if (sep && sep->empty()) fail("empty separator");
    const Value* m = a.get(1, "maxsplit");
    return str_list(py_split(s, sep, m ? need_int(m) : -1, name == "rsplit"));
  }
  if (name == "splitlines") {
    a.check(callee, {"keepends"});
    const Value* k = a.get(0, "keepends");
    return str_list(py_splitlines(s, k && need_int(k) != 0));
  }
  if (name == "startswith" || name == "endswith") {
    a.check(callee, {"prefix"});
    if (a.pos.empty()) fail(callee + "() takes at least 1 argument (0 given)");
    return Value::boolean(affix_match(s, a.pos[0], name == "startswith", name));
  }
  if (name == "upper" || name == "lower" || name == "casefold" || name == "title" || name == "capitalize" ||
      name == "swapcase") {
    a.check(callee, {});
    if (name == "upper") return Value::str(py_upper(s));
    if (name == "title") return Value::str(py_title(s));
    if (name == "capitalize") return Value::str(py_capitalize(s));
    if (name == "swapcase") return Value::str(py_swapcase(s));
    return Value::str(py_lower(s));
  }
  if (name == "replace") {
    a.check(callee, {"old", "new", "count"});
    if (a.pos.size() < 2) fail("replace expected at least 2 arguments, got " + std::to_string(a.pos.size()));
    const Value* c = a.get(2, "count");
    return Value::str(py_replace(s, need_str(&a.pos[0], "replace() argument 1"),
                                 need_str(&a.pos[1], "replace() argument 2"), c ? need_int(c) : -1));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    a.check(callee, {"sub"});
    if (a.pos.empty()) fail(callee + "() takes at least 1 argument (0 given)");
    const std::string sub = need_str(&a.pos[0], "must be str");
    if (name == "count") return Value::integer(py_count(s, sub));
    const int64_t at = py_find(s, sub, name[0] == 'r');
    if (at < 0 && (name == "index" || name == "rindex")) fail("substring not found");
    return Value::integer(at);
  }
  if (name == "join") {
    a.check(callee, {"iterable"});
    if (a.pos.empty()) fail("join() takes exactly one argument (0 given)");
    std::string out;
    std::size_t k = 0;
    for (const Value& item : iterate(a.pos[0])) {
      if (!item.is_str())
        fail("sequence item " + std::to_string(k) + ": expected str instance, " + type_name(item) + " found");
      if (k++) out += s;
      out += item.s();
    }
    return Value::str(std::move(out));
  }
  if (name == "format") return Value::str(str_format(s, a));
  if (name.compare(0, 2, "is") == 0) a.check(callee, {});  // the is*() predicates take no arguments
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") return Value::boolean(all_cps(s, py_isdigit));
  if (name == "isalpha") return Value::boolean(all_cps(s, py_isalpha));
  if (name == "isalnum") return Value::boolean(all_cps(s, [](char32_t c) { return py_isalpha(c) || py_isdigit(c); }));
  if (name == "isspace") return Value::boolean(all_cps(s, py_isspace));
  if (name == "isascii") return Value::boolean(is_ascii(s));
  if (name == "islower") return Value::boolean(py_islower(s));
  if (name == "isupper") return Value::boolean(py_isupper(s));
  if (name == "center" || name == "ljust" || name == "rjust") {
    a.check(callee, {"width", "fillchar"});
    if (a.pos.empty()) fail(callee + "() takes at least 1 argument (0 given)");
    const Value* f = a.get(1, "fillchar");
    const std::string fill = f ? need_str(f, "fillchar") : " ";
    if (utf8_length(fill) != 1) fail("The fill character must be exactly one character long");
    return Value::str(pad(s, need_int(&a.pos[0]), fill, name == "center" ? 0 : name == "ljust" ? -1 : 1));
  }
  if (name == "zfill") {
    a.check(callee, {"width"});
    if (a.pos.empty()) fail("zfill() takes exactly one argument (0 given)");
    const int64_t width = need_int(&a.pos[0]), len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return Value::str(s);
    const bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
    return Value::str((sign ? s.substr(0, 1) : "") + std::string(static_cast<std::size_t>(width - len), '0') +
                      (sign ? s.substr(1) : s));
  }
  if (name == "partition" || name == "rpartition") {
    a.check(callee, {"sep"});
    if (a.pos.empty()) fail(callee + "() takes exactly one argument (0 given)");
    const std::string sep = need_str(&a.pos[0], "sep");
    if (sep.empty()) fail("empty separator");
    const std::size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos)
      return name == "partition" ? Value::tuple({Value::str(s), Value::str(""), Value::str("")})
                                 : Value::tuple({Value::str(""), Value::str(""), Value::str(s)});
    return Value::tuple({Value::str(s.substr(0, at)), Value::str(sep), Value::str(s.substr(at + sep.size()))});
  }
  if (name == "removeprefix" || name == "removesuffix") {
    a.check(callee, {"affix"});
    if (a.pos.empty()) fail(callee + "() takes exactly one argument (0 given)");
    const std::string x = need_str(&a.pos[0], name + "() argument");
    if (name == "removeprefix") return Value::str(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    if (x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0 && !x.empty())
      return Value::str(s.substr(0, s.size() - x.size()));
    return Value::str(s);
  }
  fail("unsupported method \"" + name + "\" of str");
}

}  // namespace

Value call_method(Renderer&, const Value& self, const std::string& name, const Args& a) {
  switch (self.kind) {
    case Kind::Str: return str_method(self.s(), name, a);
    case Kind::Dict: {
      const DictObj& d = self.dict();
      if (name == "get") {
        a.check("dict.get", {"key", "default"});
        if (a.pos.empty()) fail("get expected at least 1 argument, got 0");
        const Value* v = d.find(a.pos[0]);
        const Value* dflt = a.get(1, "default");
        return v ? *v : (dflt ? *dflt : Value::none());
      }
      a.check("dict." + name, {});
      std::vector<Value> out;
      for (const auto& [k, v] : d.entries) {
        if (name == "items")
          out.push_back(Value::tuple({k, v}));
        else if (name == "keys")
          out.push_back(k);
        else if (name == "values")
          out.push_back(v);
      }
      if (name == "copy") return self;
      if (name == "items" || name == "keys" || name == "values")
        return tagged(Value::list(std::move(out)), "dict_" + name);
      fail("unsupported method \"" + name + "\" of dict");
    }
    case Kind::List:
    case Kind::Tuple: {
      if (name == "copy") return Value::list(self.items());
      a.check(type_name(self) + "." + name, {"value"});
      if (a.pos.empty()) fail(name + "() takes exactly one argument (0 given)");
      int64_t count = 0;
      for (std::size_t k = 0; k < self.items().size(); ++k) {
        if (!py_eq(self.items()[k], a.pos[0])) continue;
        if (name == "index") return Value::integer(static_cast<int64_t>(k));
        ++count;
      }
      if (name == "index") fail(py_repr(a.pos[0]) + " is not in " + type_name(self));
      return Value::integer(count);
    }
    case Kind::Loop: {
      auto& l = *static_cast<LoopObj*>(self.obj.get());
      if (name == "cycle") {
        if (a.pos.empty()) fail("no items for cycling given");
        return a.pos[static_cast<std::size_t>(l.index0) % a.pos.size()];
      }
      const Value now = a.pos.size() == 1 ? a.pos[0] : Value::tuple(a.pos);
      const bool changed = !l.has_changed_value || !py_eq(now, l.changed_value);
      l.has_changed_value = true;
      l.changed_value = now;
      return Value::boolean(changed);
    }
    default: fail("unsupported method \"" + name + "\" of " + type_name(self));
  }
}

}  // namespace prefopt::data::jinja
