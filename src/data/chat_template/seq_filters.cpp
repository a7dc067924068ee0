// jinja2's filters over sequences (first, last, list, items, reverse, map, select / reject / selectattr /
// rejectattr, sort, unique, dictsort, groupby, min, max, sum, join, batch, slice), each as jinja2 3.1 defines
// it. Where jinja2 returns a generator the result is lazy too: nothing (not even an error) happens until it is
// iterated, so `{% if xs | select("bad_test") %}` renders as in jinja2. Never mutates its input.
#include <algorithm>
#include <optional>

#include "interp.h"
#include "text.h"

namespace prefopt::data::jinja {
namespace {

Value ignore_case(const Value& v) { return v.is_str() ? Value::str(py_lower(v.s())) : v; }

// jinja2's make_attrgetter: "a.b.0" looks up item a, then b, then index 0, each with getitem's rules.
struct AttrGetter {
  std::vector<Value> parts;
  bool lower = false;
  std::optional<Value> dflt;

  AttrGetter(const Value* attribute, bool lower_case, const Value* default_value = nullptr) : lower(lower_case) {
    if (default_value && !default_value->is_none()) dflt = *default_value;
    if (!attribute || attribute->is_none()) return;
    if (!attribute->is_str()) {
      parts.push_back(*attribute);
      return;
    }
    for (const std::string& p : py_split(attribute->s(), std::string("."), -1, false)) {
      // "0" looks up index 0 (an index too large for any list stays a key)
      const bool digits = !p.empty() && p.size() <= 18 && p.find_first_not_of("0123456789") == std::string::npos;
      parts.push_back(digits ? Value::integer(std::stoll(p)) : Value::str(p));
    }
  }
  Value operator()(Value item) const {
    for (const Value& p : parts) {
      if (item.is_undefined()) raise_undefined(item);
      item = get_item(item, p);
      if (dflt && item.is_undefined()) item = *dflt;
    }
    return lower ? ignore_case(item) : item;
  }
};

// jinja2's make_multi_attrgetter (sort): "age,name" gives the list [item.age, item.name].
struct MultiAttrGetter {
  std::vector<AttrGetter> getters;
  MultiAttrGetter(const Value* attribute, bool lower_case) {
    if (attribute && attribute->is_str()) {
      for (const std::string& part : py_split(attribute->s(), std::string(","), -1, false)) {
        const Value p = Value::str(part);
        getters.emplace_back(&p, lower_case);
      }
    } else {
      getters.emplace_back(attribute, lower_case);
    }
  }
  Value operator()(const Value& item) const {
    std::vector<Value> keys;
    for (const auto& g : getters) keys.push_back(g(item));
    return Value::list(std::move(keys));
  }
};

// sorted(items, key=..., reverse=...): stable, and stable in reverse too (equal keys keep their order).
void stable_sort_values(std::vector<Value>& items, const std::vector<Value>& keys, bool reverse) {
  std::vector<std::size_t> order(items.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    return reverse ? py_less(keys[y], keys[x]) : py_less(keys[x], keys[y]);
  });
  std::vector<Value> out;
  for (std::size_t k : order) out.push_back(items[k]);
  items = std::move(out);
}

// sorted()'s reverse must be an int or bool in Python.
bool reverse_arg(const Args& a, std::size_t index) {
  const Value* v = a.get(index, "reverse");
  if (!v) return false;
  if (v->kind != Kind::Bool && v->kind != Kind::Int)
    fail("'" + type_name(*v) + "' object cannot be interpreted as an integer");
  return v->as_int() != 0;
}

void check_hashable(const Value& v) {
  if (v.kind == Kind::List || v.kind == Kind::Dict || v.kind == Kind::Namespace)
    fail("unhashable type: '" + type_name(v) + "'");
}

// Pulls `v`'s items one at a time: a generator as it goes, anything else iterated on the first pull (so that
// "'int' object is not iterable" surfaces when the consumer runs, as in Python).
std::function<bool(Value&)> pull_from(const Value& v) {
  if (v.kind == Kind::Generator) {
    auto g = v.obj;
    return [g](Value& out) { return static_cast<GeneratorObj*>(g.get())->next(out); };
  }
  struct State {
    bool started = false;
    std::vector<Value> items;
    std::size_t pos = 0;
  };
  auto st = std::make_shared<State>();
  return [v, st](Value& out) {
    if (!st->started) st->started = true, st->items = iterate(v);
    if (st->pos >= st->items.size()) return false;
    out = st->items[st->pos++];
    return true;
  };
}

// A lazy generator whose producer is set up on the first pull: `setup` returns the per-pull function.
Value lazy_with_setup(std::function<std::function<bool(Value&)>()> setup) {
  auto producer = std::make_shared<std::function<bool(Value&)>>();
  return Value::lazy([setup = std::move(setup), producer](Value& out) {
    if (!*producer) *producer = setup();
    return (*producer)(out);
  });
}

Value select_or_reject(Renderer& r, const Value& value, const Args& args, bool select, bool by_attr) {
  auto a = std::make_shared<const Args>(args);
  return lazy_with_setup([&r, value, a, select, by_attr]() -> std::function<bool(Value&)> {
    if (!truthy(value)) return [](Value&) { return false; };
    if (by_attr && a->pos.empty()) fail("Missing parameter for attribute name");
    const std::size_t off = by_attr ? 1 : 0;
    auto get = std::make_shared<AttrGetter>(by_attr ? &a->pos[0] : nullptr, false);
    auto test_args = std::make_shared<Args>();
    const bool has_test = a->pos.size() > off;
    if (has_test) {
      test_args->pos.assign(a->pos.begin() + static_cast<std::ptrdiff_t>(off + 1), a->pos.end());
      test_args->kw = a->kw;
    }
    auto src = pull_from(value);
    return [&r, a, off, get, test_args, has_test, select, src](Value& out) {
      Value item;
      while (src(item)) {
        const Value probe = (*get)(item);
        bool ok;
        if (has_test) {
          if (!a->pos[off].is_str()) fail("test name must be a string");
          ok = apply_test(r, a->pos[off].s(), probe, *test_args);
        } else {
          ok = truthy(probe);
        }
        if (ok == select) {
          out = std::move(item);
          return true;
        }
      }
      return false;
    };
  });
}

Value do_map(Renderer& r, const Value& value, const Args& args) {
  auto a = std::make_shared<const Args>(args);
  return lazy_with_setup([&r, value, a]() -> std::function<bool(Value&)> {
    if (!truthy(value)) return [](Value&) { return false; };
    auto src = pull_from(value);
    if (a->pos.empty() && a->kwarg("attribute")) {
      for (const auto& [k, v] : a->kw)
        if (k != "attribute" && k != "default") fail("Unexpected keyword argument '" + k + "'");
      auto get = std::make_shared<AttrGetter>(a->kwarg("attribute"), false, a->kwarg("default"));
      return [src, get](Value& out) {
        Value item;
        if (!src(item)) return false;
        out = (*get)(item);
        return true;
      };
    }
    if (a->pos.empty()) fail("map requires a filter argument");
    if (!a->pos[0].is_str()) fail("map: the filter name must be a string");
    auto rest = std::make_shared<Args>();
    rest->pos.assign(a->pos.begin() + 1, a->pos.end());
    rest->kw = a->kw;
    return [&r, src, a, rest](Value& out) {
      Value item;
      if (!src(item)) return false;
      out = apply_filter(r, a->pos[0].s(), item, *rest);
      return true;
    };
  });
}

Value do_unique(const Value& value, const Args& args) {
  args.check("unique", {"case_sensitive", "attribute"});  // argument binding is eager, the body lazy
  auto a = std::make_shared<const Args>(args);
  return lazy_with_setup([value, a]() -> std::function<bool(Value&)> {
    auto key = std::make_shared<AttrGetter>(a->get(1, "attribute"), !a->flag(0, "case_sensitive"));
    auto seen = std::make_shared<std::vector<Value>>();
    auto src = pull_from(value);
    return [src, key, seen](Value& out) {
      Value item;
      while (src(item)) {
        const Value k = (*key)(item);
        check_hashable(k);
        if (std::none_of(seen->begin(), seen->end(), [&](const Value& s) { return py_eq(s, k); })) {
          seen->push_back(k);
          out = std::move(item);
          return true;
        }
      }
      return false;
    };
  });
}

Value min_max(const Value& value, const Args& a, bool want_max) {
  a.check(want_max ? "max" : "min", {"case_sensitive", "attribute"});
  const std::vector<Value> items = iterate(value);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const AttrGetter key(a.get(1, "attribute"), !a.flag(0, "case_sensitive"));
  std::size_t best = 0;
  Value best_key = key(items[0]);
  for (std::size_t k = 1; k < items.size(); ++k) {
    Value kk = key(items[k]);
    if (want_max ? py_less(best_key, kk) : py_less(kk, best_key)) best = k, best_key = std::move(kk);
  }
  return items[best];
}

Value sort_like(const std::string& name, const Value& v, const Args& a) {
  if (name == "dictsort") {
    a.check(name, {"case_sensitive", "by", "reverse"});
    if (v.is_undefined()) raise_undefined(v);
    if (v.kind != Kind::Dict) fail("'" + type_name(v) + "' object has no attribute 'items'");
    const Value* by = a.get(1, "by");
    const std::string which = by ? py_str(*by) : "key";
    if (which != "key" && which != "value") fail("You can only sort by either \"key\" or \"value\"");
    std::vector<Value> items, keys;
    for (const auto& [k, x] : v.dict().entries) {
      items.push_back(Value::tuple({k, x}));
      const Value& key = which == "key" ? k : x;
      keys.push_back(a.flag(0, "case_sensitive") ? key : ignore_case(key));
    }
    stable_sort_values(items, keys, reverse_arg(a, 2));
    return Value::list(std::move(items));
  }
  const bool sort = name == "sort";
  if (sort)
    a.check(name, {"reverse", "case_sensitive", "attribute"});
  else
    a.check(name, {"attribute", "default", "case_sensitive"});
  const bool case_sensitive = a.flag(sort ? 1 : 2, "case_sensitive");
  const Value* attribute = a.get(sort ? 2 : 0, "attribute");
  std::vector<Value> items = iterate(v), keys;
  if (sort) {
    const MultiAttrGetter key(attribute, !case_sensitive);
    for (const Value& item : items) keys.push_back(key(item));
    stable_sort_values(items, keys, reverse_arg(a, 0));
    return Value::list(std::move(items));
  }
  // groupby: sort by the key, then (grouper, members) for each run of equal keys; grouper is the first
  // member's real key when the grouping ignored case.
  const AttrGetter key(attribute, !case_sensitive, a.get(1, "default"));
  const AttrGetter real_key(attribute, false, a.get(1, "default"));
  for (const Value& item : items) keys.push_back(key(item));
  stable_sort_values(items, keys, false);
  std::vector<Value> groups;
  for (std::size_t k = 0; k < items.size();) {
    std::size_t e = k + 1;
    const Value gk = key(items[k]);
    while (e < items.size() && py_eq(key(items[e]), gk)) ++e;
    std::vector<Value> members(items.begin() + static_cast<std::ptrdiff_t>(k),
                               items.begin() + static_cast<std::ptrdiff_t>(e));
    Value grouper = case_sensitive ? gk : real_key(members[0]);
    groups.push_back(tagged(Value::tuple({std::move(grouper), Value::list(std::move(members))}), "group"));
    k = e;
  }
  return Value::list(std::move(groups));
}

Value batch_or_slice(const std::string& name, const Value& v, const Args& args) {
  const bool batch = name == "batch";
  args.check(name, {batch ? "linecount" : "slices", "fill_with"});
  if (!args.get(0, batch ? "linecount" : "slices"))
    fail(std::string("do_") + name + "() missing 1 required positional argument: '" + (batch ? "linecount" : "slices") +
         "'");
  auto a = std::make_shared<const Args>(args);
  return lazy_with_setup([v, a, batch]() -> std::function<bool(Value&)> {
    const int64_t n = a->integer(0, batch ? "linecount" : "slices", 0);
    const Value* fill = a->get(1, "fill_with");
    const std::optional<Value> filler = fill && !fill->is_none() ? std::optional<Value>(*fill) : std::nullopt;
    auto items = std::make_shared<std::vector<Value>>(iterate(v));
    auto next = std::make_shared<int64_t>(0);
    if (batch) {
      if (n <= 0) fail("batch: linecount must be positive");
      return [items, next, n, filler](Value& out) {
        const std::size_t begin = static_cast<std::size_t>(*next) * static_cast<std::size_t>(n);
        if (begin >= items->size()) return false;
        ++*next;
        const std::size_t end = std::min(items->size(), begin + static_cast<std::size_t>(n));
        std::vector<Value> row(items->begin() + static_cast<std::ptrdiff_t>(begin),
                               items->begin() + static_cast<std::ptrdiff_t>(end));
        while (filler && static_cast<int64_t>(row.size()) < n) row.push_back(*filler);
        out = Value::list(std::move(row));
        return true;
      };
    }
    if (n <= 0) fail("integer division or modulo by zero");
    return [items, next, n, filler](Value& out) {
      const int64_t s = *next, len = static_cast<int64_t>(items->size()), per = len / n, extra = len % n;
      if (s >= n) return false;
      ++*next;
      const int64_t start = s * per + std::min(s, extra), stop = start + per + (s < extra ? 1 : 0);
      std::vector<Value> col(items->begin() + start, items->begin() + stop);
      if (filler && s >= extra) col.push_back(*filler);
      out = Value::list(std::move(col));
      return true;
    };
  });
}

}  // namespace

Value apply_seq_filter(Renderer& r, const std::string& name, const Value& v, const Args& a) {
  if (name == "first" || name == "last" || name == "list" || name == "items" || name == "reverse") a.check(name, {});
  if (name == "first") {
    if (v.kind == Kind::Generator) {
      Value item;
      if (static_cast<GeneratorObj*>(v.obj.get())->next(item)) return item;
    } else {
      const std::vector<Value> items = iterate(v);
      if (!items.empty()) return items[0];
    }
    return Value::undefined("No first item, sequence was empty.");
  }
  if (name == "last") {
    if (v.kind == Kind::Generator) fail("'generator' object is not reversible");
    const std::vector<Value> items = iterate(v);
    return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
  }
  if (name == "list") return Value::list(iterate(v));
  if (name == "items") {
    return lazy_with_setup([v]() -> std::function<bool(Value&)> {
      if (v.is_undefined()) return [](Value&) { return false; };
      if (v.kind != Kind::Dict) fail("Can only get item pairs from a mapping.");
      auto pos = std::make_shared<std::size_t>(0);
      return [v, pos](Value& out) {
        const auto& entries = v.dict().entries;
        if (*pos >= entries.size()) return false;
        out = Value::tuple({entries[*pos].first, entries[*pos].second});
        ++*pos;
        return true;
      };
    });
  }
  if (name == "reverse") {
    if (v.is_str()) return get_slice(v, Value::none(), Value::none(), Value::integer(-1));
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    // reversed() of a list / tuple / dict is a one-shot iterator; of a generator, jinja2 builds a list.
    return v.kind == Kind::Generator ? Value::list(std::move(items)) : Value::generator(std::move(items));
  }
  if (name == "map") return do_map(r, v, a);
  if (name == "select" || name == "reject") return select_or_reject(r, v, a, name == "select", false);
  if (name == "selectattr" || name == "rejectattr") return select_or_reject(r, v, a, name == "selectattr", true);
  if (name == "unique") return do_unique(v, a);
  if (name == "sort" || name == "dictsort" || name == "groupby") return sort_like(name, v, a);
  if (name == "min" || name == "max") return min_max(v, a, name == "max");
  if (name == "sum") {
    a.check(name, {"attribute", "start"});
    const AttrGetter get(a.get(0, "attribute"), false);
    const Value* start = a.get(1, "start");
    Value total = start ? *start : Value::integer(0);
    for (const Value& item : iterate(v)) total = binary_op("+", total, get(item));
    return total;
  }
  if (name == "join") {
    a.check(name, {"d", "attribute"});
    const Value* sep = a.get(0, "d");
    const std::string d = sep ? py_str(*sep) : "";
    const AttrGetter get(a.get(1, "attribute"), false);
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      if (!first) out += d;
      first = false;
      append_str(out, get(item));
    }
    return Value::str(std::move(out));
  }
  if (name == "batch" || name == "slice") return batch_or_slice(name, v, a);
  fail("unsupported filter \"" + name + "\"");
}

}  // namespace prefopt::data::jinja
