// What is decided about a template after parsing and before rendering (see parser.h): which special names a
// macro body reads, and jinja2's compile-time rejection of unknown filters and tests (deferred to render time
// inside if statements and inline ifs, as jinja2's "soft frames" defer it). Never renders.
#include <functional>
#include <set>

#include "builtins.h"
#include "parser.h"

namespace prefopt::data::jinja {

void scan_macro_names(Stmt& macro) {
  std::set<std::string> names;
  std::function<void(const Expr*)> expr = [&](const Expr* e) {
    if (!e) return;
    if (e->kind == Ex::Name) names.insert(e->name);
    expr(e->node.get()), expr(e->arg.get()), expr(e->third.get());
    for (const auto& x : e->items) expr(x.get());
    for (const auto& x : e->call.args) expr(x.get());
    for (const auto& kv : e->call.kwargs) expr(kv.second.get());
    expr(e->call.dyn_args.get()), expr(e->call.dyn_kwargs.get());
  };
  std::function<void(const Body&)> body = [&](const Body& b) {
    for (const auto& st : b) {
      for (const auto& p : st->pieces) expr(p.expr.get());
      expr(st->target.get()), expr(st->expr.get()), expr(st->cond.get());
      body(st->body), body(st->else_body);
      for (const auto& br : st->branches) expr(br.first.get()), body(br.second);
      for (const auto& d : st->defaults) expr(d.get());
      for (const auto& v : st->values) expr(v.get());
    }
  };
  body(macro.body);
  macro.catch_varargs = names.count("varargs") > 0;
  macro.catch_kwargs = names.count("kwargs") > 0;
  macro.uses_caller = names.count("caller") > 0;
}

namespace {

// soft: inside an if statement or inline if, where jinja2 only fails on an unknown filter / test when it runs.
void check_expr(const Expr* e, bool soft) {
  if (!e) return;
  if (!soft && e->kind == Ex::Filter && !jinja_has_filter(e->name))
    throw Fault{"no filter named \"" + e->name + "\"", e->line};
  if (!soft && e->kind == Ex::Test && !jinja_has_test(e->name))
    throw Fault{"no test named \"" + e->name + "\"", e->line};
  const bool inner = soft || e->kind == Ex::Cond;
  check_expr(e->node.get(), inner), check_expr(e->arg.get(), inner), check_expr(e->third.get(), inner);
  for (const auto& x : e->items) check_expr(x.get(), inner);
  for (const auto& x : e->call.args) check_expr(x.get(), inner);
  for (const auto& kv : e->call.kwargs) check_expr(kv.second.get(), inner);
  check_expr(e->call.dyn_args.get(), inner), check_expr(e->call.dyn_kwargs.get(), inner);
}

void check_body(const Body& body, bool soft) {
  for (const auto& s : body) {
    for (const auto& p : s->pieces) check_expr(p.expr.get(), soft);
    switch (s->kind) {
      case St::If:  // tests and branches all compile in the if's soft frame
        for (const auto& [test, branch] : s->branches) check_expr(test.get(), true), check_body(branch, true);
        check_body(s->else_body, true);
        break;
      case St::For:  // the iterable in the enclosing frame; the loop's own frame is strict
        check_expr(s->expr.get(), soft), check_expr(s->cond.get(), false);
        check_body(s->body, false), check_body(s->else_body, false);
        break;
      case St::Set: check_expr(s->expr.get(), soft); break;
      case St::With:
        for (const auto& v : s->values) check_expr(v.get(), soft);
        check_body(s->body, false);
        break;
      case St::CallBlock:
        check_expr(s->expr.get(), soft);
        for (const auto& d : s->defaults) check_expr(d.get(), false);
        check_body(s->body, false);
        break;
      default:  // macro, set / filter / generation blocks: bodies (and block filters) in a new, strict frame
        check_expr(s->expr.get(), false);
        for (const auto& d : s->defaults) check_expr(d.get(), false);
        check_body(s->body, false), check_body(s->else_body, false);
    }
  }
}

}  // namespace

void check_names(const Program& prog) { check_body(prog.body, false); }

}  // namespace prefopt::data::jinja
