// The renderer's state: variable scopes (jinja2's: a for-loop iteration, a macro call, a with / set / filter /
// generation block each get a child scope; if does not), the callable and loop objects, and the Renderer that
// walks a parsed template. One Renderer per render call, so rendering a shared template is thread-safe.
// Never parses: it walks what parser.cpp built.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ast.h"
#include "builtins.h"
#include "value.h"

namespace prefopt::data::jinja {

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  /// The innermost binding of `name`, or nullptr.
  const Value* lookup(const std::string& name) const;
  /// Binds `name` in this scope (never in a parent: jinja2's assignments are local).
  void set(const std::string& name, Value v);
};
using ScopePtr = std::shared_ptr<Scope>;

struct CallableObj final : Object {
  enum class Type {
    Macro,   ///< a {% macro %} (stmt: the Macro statement) or a call block's caller (stmt: the CallBlock)
    Global,  ///< raise_exception, strftime_now, namespace, dict, range, ... (name)
    Method,  ///< a Python method bound to `self` (name)
  };
  Type type = Type::Global;
  std::string name;
  Value self;
  const Stmt* stmt = nullptr;
  ScopePtr closure;

  std::string repr() const override;
};
Value make_callable(CallableObj c);

/// The `loop` variable of a for loop.
struct LoopObj final : Object {
  std::shared_ptr<const std::vector<Value>> items;
  int64_t index0 = 0;
  bool has_changed_value = false;
  Value changed_value;  ///< loop.changed()'s memory

  std::string repr() const override;
};

class Renderer {
 public:
  explicit Renderer(std::time_t now) : now_(now) {}
  /// Breaks the reference cycles a render can build (a macro stored in the scope it closes over, a namespace
  /// holding itself), so that nothing outlives the render.
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  /// Renders `prog` with `root` as its variables; generation spans are collected into spans().
  std::string render(const Program& prog, const ScopePtr& root);
  const std::vector<std::pair<std::size_t, std::size_t>>& spans() const { return spans_; }

  Value eval(const Expr& e, const ScopePtr& scope);
  /// Calls anything callable (macro, global, bound method); calling anything else is a Fault.
  Value call(const Value& callee, const Args& args);
  std::time_t now() const { return now_; }
  /// Registers a namespace object for the cycle breaking at the end of the render.
  void track(const std::shared_ptr<NamespaceObj>& ns) { namespaces_.push_back(ns); }

 private:
  enum class Flow { Normal, Break, Continue };
  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  Value eval_inner(const Expr& e, const ScopePtr& scope);
  Args eval_args(const CallArgs& c, const ScopePtr& scope);
  Value filter_chain(const Expr& f, const Value& input, const ScopePtr& scope);
  void assign(const Expr& target, const Value& v, const ScopePtr& scope);
  Value call_macro(const CallableObj& m, const Args& args);
  std::string render_block(const Body& body, const ScopePtr& parent);

  std::time_t now_;
  std::string* top_ = nullptr;
  int call_depth_ = 0;
  std::vector<std::pair<std::size_t, std::size_t>> spans_;
  std::vector<std::weak_ptr<Scope>> closure_scopes_;
  std::vector<std::weak_ptr<NamespaceObj>> namespaces_;
};

}  // namespace prefopt::data::jinja
