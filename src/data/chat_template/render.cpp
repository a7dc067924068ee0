// Walks a parsed template (see interp.h): statements write to an output buffer, expressions evaluate to
// values with jinja2's semantics (and / or return an operand, comparisons chain, Undefined prints nothing but
// raises when used). Every Fault leaving an expression or statement is stamped with its template line.
// Never recurses without bound: macro calls nest at most 256 deep.
#include "interp.h"

namespace prefopt::data::jinja {
namespace {

constexpr int kMaxCallDepth = 256;
constexpr std::size_t kMaxOutput = std::size_t(1) << 28;

[[noreturn]] void compare_error(const std::string& op, const Value& a, const Value& b) {
  fail("'" + op + "' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

bool orderable(const Value& a, const Value& b) {
  return (a.is_number() && b.is_number()) || (a.is_str() && b.is_str()) || (a.kind == b.kind && a.is_sequence());
}

bool compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return py_eq(a, b);
  if (op == "!=") return !py_eq(a, b);
  if (op == "in") return py_contains(b, a);
  if (op == "notin") return !py_contains(b, a);
  if (a.is_undefined()) raise_undefined(a);
  if (b.is_undefined()) raise_undefined(b);
  if (!orderable(a, b)) compare_error(op, a, b);
  if (op == "<") return py_less(a, b);
  if (op == ">") return py_less(b, a);
  if (op == "<=") return !py_less(b, a);
  return !py_less(a, b);  // ">="
}

}  // namespace

const Value* Scope::lookup(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get())
    for (auto it = s->vars.rbegin(); it != s->vars.rend(); ++it)
      if (it->first == name) return &it->second;
  return nullptr;
}

void Scope::set(const std::string& name, Value v) {
  for (auto& [k, val] : vars) {
    if (k == name) {
      val = std::move(v);
      return;
    }
  }
  vars.emplace_back(name, std::move(v));
}

std::string CallableObj::repr() const {
  if (type == Type::Macro) return stmt && stmt->kind == St::Macro ? "<Macro '" + name + "'>" : "<Macro 'caller'>";
  if (type == Type::Method) return "<built-in method " + name + " of " + type_name(self) + " object>";
  return "<function " + name + ">";
}

Value make_callable(CallableObj c) {
  Value v;
  v.kind = Kind::Callable;
  v.obj = std::make_shared<CallableObj>(std::move(c));
  return v;
}

std::string LoopObj::repr() const {
  return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(items->size()) + ">";
}

Renderer::~Renderer() {
  for (const auto& w : closure_scopes_) {
    if (auto scope = w.lock()) {
      scope->vars.clear();
      scope->parent.reset();
    }
  }
  for (const auto& w : namespaces_) {
    if (auto ns = w.lock()) ns->attrs.entries.clear();
  }
}

std::string Renderer::render(const Program& prog, const ScopePtr& root) {
  std::string out;
  top_ = &out;
  spans_.clear();
  exec(prog.body, root, out);
  return out;
}

std::string Renderer::render_block(const Body& body, const ScopePtr& parent) {
  auto scope = std::make_shared<Scope>();
  scope->parent = parent;
  std::string buf;
  exec(body, scope, buf);
  return buf;
}

Renderer::Flow Renderer::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    const Flow f = exec_stmt(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Renderer::Flow Renderer::exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out) {
  try {
    switch (s.kind) {
      case St::Output:
        for (const Piece& p : s.pieces) {
          if (p.expr)
            append_str(out, eval(*p.expr, scope));
          else
            out += p.text;
        }
        if (out.size() > kMaxOutput) fail("rendered text larger than 256 MiB");
        return Flow::Normal;
      case St::If:
        for (const auto& [test, body] : s.branches)
          if (truthy(eval(*test, scope))) return exec(body, scope, out);
        return exec(s.else_body, scope, out);
      case St::For: exec_for(s, scope, out); return Flow::Normal;
      case St::Set: assign(*s.target, eval(*s.expr, scope), scope); return Flow::Normal;
      case St::SetBlock: {
        Value v = Value::str(render_block(s.body, scope));
        if (s.expr) v = filter_chain(*s.expr, v, scope);
        assign(*s.target, v, scope);
        return Flow::Normal;
      }
      case St::FilterBlock:
        append_str(out, filter_chain(*s.expr, Value::str(render_block(s.body, scope)), scope));
        return Flow::Normal;
      case St::Macro: {
        CallableObj m;
        m.type = CallableObj::Type::Macro;
        m.name = s.name;
        m.stmt = &s;
        m.closure = scope;
        closure_scopes_.push_back(scope);
        scope->set(s.name, make_callable(std::move(m)));
        return Flow::Normal;
      }
      case St::CallBlock: {
        CallableObj caller;
        caller.type = CallableObj::Type::Macro;
        caller.name = "caller";
        caller.stmt = &s;
        caller.closure = scope;
        closure_scopes_.push_back(scope);
        const Expr& call = *s.expr;
        const Value callee = eval(*call.node, scope);
        Args args = eval_args(call.call, scope);
        args.kw.emplace_back("caller", make_callable(std::move(caller)));
        append_str(out, this->call(callee, args));
        return Flow::Normal;
      }
      case St::With: {
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        std::vector<Value> values;
        for (const auto& v : s.values) values.push_back(eval(*v, scope));
        for (std::size_t k = 0; k < s.targets.size(); ++k) assign(*s.targets[k], values[k], inner);
        return exec(s.body, inner, out);
      }
      case St::Generation: {
        // transformers' AssistantTracker records (length of the top-level output so far, + length of the block),
        // which is the block's place in the final text whenever the block is not inside a macro or set block.
        const std::string rv = render_block(s.body, scope);
        const std::size_t start = top_->size();
        spans_.emplace_back(start, start + rv.size());
        out += rv;
        return Flow::Normal;
      }
      case St::Break: return Flow::Break;
      case St::Continue: return Flow::Continue;
    }
  } catch (Fault& f) {
    if (f.line == 0) f.line = s.line;
    throw;
  }
  return Flow::Normal;
}

void Renderer::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  std::vector<Value> items = iterate(eval(*s.expr, scope));
  if (s.cond) {
    std::vector<Value> kept;
    for (Value& item : items) {
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      assign(*s.target, item, probe);
      if (truthy(eval(*s.cond, probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    out += render_block(s.else_body, scope);
    return;
  }
  auto loop = std::make_shared<LoopObj>();
  loop->items = std::make_shared<const std::vector<Value>>(std::move(items));
  Value loop_value;
  loop_value.kind = Kind::Loop;
  loop_value.obj = loop;
  for (std::size_t k = 0; k < loop->items->size(); ++k) {
    loop->index0 = static_cast<int64_t>(k);
    auto iter = std::make_shared<Scope>();
    iter->parent = scope;
    iter->set("loop", loop_value);
    assign(*s.target, (*loop->items)[k], iter);
    if (exec(s.body, iter, out) == Flow::Break) break;
  }
}

void Renderer::assign(const Expr& target, const Value& v, const ScopePtr& scope) {
  if (target.kind == Ex::Name) {
    scope->set(target.name, v);
    return;
  }
  if (target.kind == Ex::NSRef) {
    const Value* ns = scope->lookup(target.name);
    if (!ns || ns->kind != Kind::Namespace) fail("cannot assign attribute on non-namespace object");
    if (!target.attr.empty() && target.attr[0] == '_')
      fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" + target.attr +
           "'. Please rename the attribute.");
    static_cast<NamespaceObj*>(ns->obj.get())->attrs.set(Value::str(target.attr), v);
    return;
  }
  // A tuple of names: unpack like Python.
  const std::vector<Value> parts = iterate(v);
  const std::size_t n = target.items.size();
  if (parts.size() > n) fail("too many values to unpack (expected " + std::to_string(n) + ")");
  if (parts.size() < n)
    fail("not enough values to unpack (expected " + std::to_string(n) + ", got " + std::to_string(parts.size()) + ")");
  for (std::size_t k = 0; k < n; ++k) assign(*target.items[k], parts[k], scope);
}

Value Renderer::filter_chain(const Expr& f, const Value& input, const ScopePtr& scope) {
  try {
    // A null node is the filtered block's text; a filter node chains; anything else is the filtered expression.
    const Value inner = !f.node                      ? input
                        : f.node->kind == Ex::Filter ? filter_chain(*f.node, input, scope)
                                                     : eval(*f.node, scope);
    return apply_filter(*this, f.name, inner, eval_args(f.call, scope));
  } catch (Fault& fault) {
    if (fault.line == 0) fault.line = f.line;
    throw;
  }
}

Args Renderer::eval_args(const CallArgs& c, const ScopePtr& scope) {
  Args a;
  for (const auto& e : c.args) a.pos.push_back(eval(*e, scope));
  if (c.dyn_args)
    for (Value& v : iterate(eval(*c.dyn_args, scope))) a.pos.push_back(std::move(v));
  for (const auto& [k, e] : c.kwargs) a.kw.emplace_back(k, eval(*e, scope));
  if (c.dyn_kwargs) {
    const Value d = eval(*c.dyn_kwargs, scope);
    if (d.kind != Kind::Dict) fail("argument after ** must be a mapping, not " + type_name(d));
    for (const auto& [k, v] : d.dict().entries) {
      if (!k.is_str()) fail("keywords must be strings");
      a.kw.emplace_back(k.s(), v);
    }
  }
  return a;
}

Value Renderer::eval(const Expr& e, const ScopePtr& scope) {
  try {
    return eval_inner(e, scope);
  } catch (Fault& f) {
    if (f.line == 0) f.line = e.line;
    throw;
  }
}

Value Renderer::eval_inner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case Ex::Const: return e.value;
    case Ex::Name: {
      const Value* v = scope->lookup(e.name);
      return v ? *v : Value::undefined("'" + e.name + "' is undefined");
    }
    case Ex::Getattr: {
      const Value obj = eval(*e.node, scope);
      if (obj.is_undefined()) raise_undefined(obj);
      return get_attr(obj, e.name);
    }
    case Ex::Getitem: {
      const Value obj = eval(*e.node, scope);
      if (obj.is_undefined()) raise_undefined(obj);
      if (e.arg->kind == Ex::Slice) {
        Value parts[3];
        for (int k = 0; k < 3; ++k) parts[k] = e.arg->items[k] ? eval(*e.arg->items[k], scope) : Value::none();
        return get_slice(obj, parts[0], parts[1], parts[2]);
      }
      return get_item(obj, eval(*e.arg, scope));
    }
    case Ex::Slice: fail("a slice is only valid inside [ ]");
    case Ex::Call: {
      const Value callee = eval(*e.node, scope);
      return call(callee, eval_args(e.call, scope));
    }
    case Ex::Filter: return filter_chain(e, Value(), scope);
    case Ex::Test: return Value::boolean(apply_test(*this, e.name, eval(*e.node, scope), eval_args(e.call, scope)));
    case Ex::Neg: return negate(eval(*e.node, scope));
    case Ex::Pos: {
      Value v = eval(*e.node, scope);
      if (v.is_undefined()) raise_undefined(v);
      if (!v.is_number()) fail("bad operand type for unary +: '" + type_name(v) + "'");
      return v.kind == Kind::Bool ? Value::integer(v.as_int()) : v;
    }
    case Ex::Not: return Value::boolean(!truthy(eval(*e.node, scope)));
    case Ex::Binary: {
      const Value a = eval(*e.node, scope);
      return binary_op(e.name, a, eval(*e.arg, scope));
    }
    case Ex::Concat: {
      std::string s;
      for (const auto& part : e.items) append_str(s, eval(*part, scope));
      return Value::str(std::move(s));
    }
    case Ex::Compare: {
      Value left = eval(*e.items[0], scope);
      for (std::size_t k = 0; k < e.ops.size(); ++k) {
        Value right = eval(*e.items[k + 1], scope);
        if (!compare(e.ops[k], left, right)) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case Ex::And: {
      Value a = eval(*e.node, scope);
      return truthy(a) ? eval(*e.arg, scope) : a;
    }
    case Ex::Or: {
      Value a = eval(*e.node, scope);
      return truthy(a) ? a : eval(*e.arg, scope);
    }
    case Ex::Cond:
      if (truthy(eval(*e.arg, scope))) return eval(*e.node, scope);
      if (e.third) return eval(*e.third, scope);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    case Ex::List:
    case Ex::Tuple: {
      std::vector<Value> items;
      for (const auto& x : e.items) items.push_back(eval(*x, scope));
      return e.kind == Ex::List ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    case Ex::Dict: {
      DictObj d;
      for (std::size_t k = 0; k + 1 < e.items.size(); k += 2) {
        Value key = eval(*e.items[k], scope);
        if (key.kind == Kind::List || key.kind == Kind::Dict) fail("unhashable type: '" + type_name(key) + "'");
        d.set(key, eval(*e.items[k + 1], scope));
      }
      return make_dict(std::move(d));
    }
    case Ex::NSRef: fail("a namespace attribute reference is only valid as an assignment target");
  }
  fail("internal error: unknown expression");
}

Value Renderer::call(const Value& callee, const Args& args) {
  if (callee.is_undefined()) raise_undefined(callee);
  if (callee.kind == Kind::Loop) fail("The loop must have the 'recursive' marker to be called recursively.");
  if (callee.kind != Kind::Callable) fail("'" + type_name(callee) + "' object is not callable");
  const auto& c = *static_cast<const CallableObj*>(callee.obj.get());
  switch (c.type) {
    case CallableObj::Type::Macro: return call_macro(c, args);
    case CallableObj::Type::Method: return call_method(*this, c.self, c.name, args);
    case CallableObj::Type::Global: return call_global(*this, c.name, args);
  }
  fail("internal error: unknown callable");
}

Value Renderer::call_macro(const CallableObj& m, const Args& args) {
  const Stmt& s = *m.stmt;
  struct Guard {
    explicit Guard(int& d) : d_(d) {
      if (d_ >= kMaxCallDepth) fail("macro calls nested more than 256 deep (runaway recursion?)");
      ++d_;
    }
    ~Guard() { --d_; }
    int& d_;
  } guard(call_depth_);

  auto scope = std::make_shared<Scope>();
  scope->parent = m.closure;
  const std::size_t n = s.params.size();
  std::vector<std::pair<std::string, Value>> kw = args.kw;
  auto take_kw = [&](const std::string& name, Value& out) {
    for (auto it = kw.begin(); it != kw.end(); ++it) {
      if (it->first == name) {
        out = std::move(it->second);
        kw.erase(it);
        return true;
      }
    }
    return false;
  };
  // Bind as jinja2's Macro.__call__ does: positionals first; keywords only fill what positionals left.
  bool found_caller = false;
  const std::size_t first_default = n - s.defaults.size();
  for (std::size_t k = 0; k < n; ++k) {
    const std::string& name = s.params[k];
    Value v;
    bool given = k < args.pos.size();
    if (given)
      v = args.pos[k];
    else if (args.pos.size() != n)
      given = take_kw(name, v);
    if (name == "caller") found_caller = true;
    if (!given) {
      if (k >= first_default)
        v = eval(*s.defaults[k - first_default], scope);
      else
        v = Value::undefined("parameter '" + name + "' was not provided");
    }
    scope->set(name, std::move(v));
  }
  if (s.uses_caller && !found_caller) {
    Value caller;
    if (!take_kw("caller", caller)) caller = Value::undefined("No caller defined");
    scope->set("caller", std::move(caller));
  }
  const std::string display = m.name;
  if (s.catch_kwargs) {
    DictObj d;
    for (auto& [k, v] : kw) d.set(Value::str(k), std::move(v));
    scope->set("kwargs", make_dict(std::move(d)));
  } else if (!kw.empty()) {
    if (kw.front().first == "caller")
      fail("macro '" + display +
           "' was invoked with two values for the special caller argument. This is most likely a bug.");
    fail("macro '" + display + "' takes no keyword argument '" + kw.front().first + "'");
  }
  if (s.catch_varargs) {
    std::vector<Value> extra;
    for (std::size_t k = n; k < args.pos.size(); ++k) extra.push_back(args.pos[k]);
    scope->set("varargs", Value::tuple(std::move(extra)));
  } else if (args.pos.size() > n) {
    fail("macro '" + display + "' takes not more than " + std::to_string(n) + " argument(s)");
  }
  std::string buf;
  exec(s.body, scope, buf);
  return Value::str(std::move(buf));
}

}  // namespace prefopt::data::jinja
