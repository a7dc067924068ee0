// jinja2's expression grammar (see parser.h) with its precedence: conditional < or < and < not < comparisons
// (chained, in / not in) < + - < ~ < * / // % < ** < unary - +, with filters, tests, calls, attribute and item
// access and slices binding to the unary operand; literals as jinja2 reads them (adjacent strings join).
// Never evaluates anything.
#include "parser.h"

namespace prefopt::data::jinja {

ExprPtr Parser::parse_condexpr() {
  Depth depth(*this);
  int line = cur().line;
  ExprPtr e = parse_or();
  while (skip_name("if")) {
    auto c = make(Ex::Cond, line);
    c->arg = parse_or();
    if (skip_name("else")) c->third = parse_condexpr();
    c->node = std::move(e);
    e = std::move(c);
    line = cur().line;
  }
  return e;
}

ExprPtr Parser::binary(Ex kind, int line, ExprPtr left, ExprPtr right, std::string op) {
  auto b = make(kind, line);
  b->node = std::move(left);
  b->arg = std::move(right);
  b->name = std::move(op);
  return b;
}

ExprPtr Parser::parse_or() {
  const int line = cur().line;
  ExprPtr e = parse_and();
  while (skip_name("or")) e = binary(Ex::Or, line, std::move(e), parse_and());
  return e;
}

ExprPtr Parser::parse_and() {
  const int line = cur().line;
  ExprPtr e = parse_not();
  while (skip_name("and")) e = binary(Ex::And, line, std::move(e), parse_not());
  return e;
}

ExprPtr Parser::parse_not() {
  if (is_name("not")) {
    Depth depth(*this);
    auto n = make(Ex::Not, next().line);
    n->node = parse_not();
    return n;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  const int line = cur().line;
  ExprPtr first = parse_math1();
  std::unique_ptr<Expr> cmp;
  while (true) {
    std::string op;
    if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
                                  cur().text == ">" || cur().text == ">=")) {
      op = next().text;
    } else if (skip_name("in")) {
      op = "in";
    } else if (is_name("not") && look().type == Tok::Name && look().text == "in") {
      next(), next();
      op = "notin";
    } else {
      break;
    }
    if (!cmp) {
      cmp = make(Ex::Compare, line);
      cmp->items.push_back(std::move(first));
    }
    cmp->ops.push_back(op);
    cmp->items.push_back(parse_math1());
  }
  return cmp ? std::move(cmp) : std::move(first);
}

ExprPtr Parser::parse_math1() {
  const int line = cur().line;
  ExprPtr e = parse_concat();
  while (is_op("+") || is_op("-")) {
    std::string op = next().text;
    e = binary(Ex::Binary, line, std::move(e), parse_concat(), op);
  }
  return e;
}

ExprPtr Parser::parse_concat() {
  const int line = cur().line;
  ExprPtr first = parse_math2();
  if (!is_op("~")) return first;
  auto c = make(Ex::Concat, line);
  c->items.push_back(std::move(first));
  while (skip_op("~")) c->items.push_back(parse_math2());
  return c;
}

ExprPtr Parser::parse_math2() {
  const int line = cur().line;
  ExprPtr e = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    std::string op = next().text;
    e = binary(Ex::Binary, line, std::move(e), parse_pow(), op);
  }
  return e;
}

ExprPtr Parser::parse_pow() {
  const int line = cur().line;
  ExprPtr e = parse_unary(true);
  while (skip_op("**")) e = binary(Ex::Binary, line, std::move(e), parse_unary(true), "**");
  return e;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  Depth depth(*this);
  const int line = cur().line;
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    const bool neg = next().text == "-";
    node = make(neg ? Ex::Neg : Ex::Pos, line);
    node->node = parse_unary(false);
  } else {
    node = parse_primary(false);
  }
  node = parse_postfix(std::move(node));
  if (with_filter) node = parse_filter_expr(std::move(node));
  return node;
}

ExprPtr Parser::parse_primary(bool with_namespace) {
  Depth depth(*this);
  const Token& tok = cur();
  const int line = tok.line;
  if (tok.type == Tok::Name) {
    const std::string n = next().text;
    if (n == "true" || n == "false" || n == "True" || n == "False") {
      auto c = make(Ex::Const, line);
      c->value = Value::boolean(n == "true" || n == "True");
      return c;
    }
    if (n == "none" || n == "None") {
      auto c = make(Ex::Const, line);
      c->value = Value::none();
      return c;
    }
    if (with_namespace && is_op(".")) {
      next();
      auto r = make(Ex::NSRef, line);
      r->name = n;
      r->attr = expect_name();
      return r;
    }
    auto e = make(Ex::Name, line);
    e->name = n;
    return e;
  }
  if (tok.type == Tok::String) {
    std::string s;
    while (cur().type == Tok::String) s += next().text;  // adjacent literals join, as in Python
    auto c = make(Ex::Const, line);
    c->value = Value::str(std::move(s));
    return c;
  }
  if (tok.type == Tok::Integer || tok.type == Tok::Float) {
    auto c = make(Ex::Const, line);
    c->value = next().value;
    return c;
  }
  if (skip_op("(")) {
    ExprPtr e = parse_tuple(false, true, {}, true);
    expect_op(")");
    return e;
  }
  if (is_op("[")) return parse_list();
  if (is_op("{")) return parse_dict();
  error("unexpected '" + describe(tok) + "'");
}

bool Parser::is_tuple_end(const std::vector<std::string>&) const {
  // jinja2 3.1 passes its extra end rules ("in" of a for loop) to test_any as one tuple, so they never match:
  // a trailing comma before `in` makes `in` part of the target, and the for then fails on the next token.
  return cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")");
}

ExprPtr Parser::parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                            bool explicit_parens, bool with_namespace) {
  const int line = cur().line;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    if (is_tuple_end(extra_end)) break;
    items.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
    if (is_op(","))
      is_tuple = true;
    else
      break;
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) error("Expected an expression, got '" + describe(cur()) + "'");
  }
  auto t = make(Ex::Tuple, line);
  t->items = std::move(items);
  return t;
}

ExprPtr Parser::parse_list() {
  auto l = make(Ex::List, next().line);
  while (!is_op("]")) {
    if (!l->items.empty()) expect_op(",");
    if (is_op("]")) break;
    l->items.push_back(parse_expression(true));
  }
  expect_op("]");
  return l;
}

ExprPtr Parser::parse_dict() {
  auto d = make(Ex::Dict, next().line);
  while (!is_op("}")) {
    if (!d->items.empty()) expect_op(",");
    if (is_op("}")) break;
    d->items.push_back(parse_expression(true));
    expect_op(":");
    d->items.push_back(parse_expression(true));
  }
  expect_op("}");
  return d;
}

ExprPtr Parser::parse_postfix(ExprPtr node) {
  while (true) {
    if (is_op(".") || is_op("["))
      node = parse_subscript(std::move(node));
    else if (is_op("("))
      node = parse_call(std::move(node));
    else
      return node;
  }
}

ExprPtr Parser::parse_filter_expr(ExprPtr node) {
  while (true) {
    if (is_op("|"))
      node = parse_filter(std::move(node), false);
    else if (is_name("is"))
      node = parse_test(std::move(node));
    else if (is_op("("))
      node = parse_call(std::move(node));
    else
      return node;
  }
}

ExprPtr Parser::parse_subscript(ExprPtr node) {
  const Token& tok = next();
  const int line = tok.line;
  if (tok.text == ".") {
    const Token& attr = next();
    if (attr.type == Tok::Name) {
      auto g = make(Ex::Getattr, line);
      g->node = std::move(node);
      g->name = attr.text;
      return g;
    }
    if (attr.type != Tok::Integer) error("expected name or number", attr.line);
    auto g = make(Ex::Getitem, line);
    g->node = std::move(node);
    g->arg = make(Ex::Const, attr.line);
    g->arg->value = attr.value;
    return g;
  }
  std::vector<ExprPtr> args;
  while (!is_op("]")) {
    if (!args.empty()) expect_op(",");
    args.push_back(parse_subscribed());
  }
  expect_op("]");
  auto g = make(Ex::Getitem, line);
  g->node = std::move(node);
  if (args.size() == 1) {
    g->arg = std::move(args[0]);
  } else {
    g->arg = make(Ex::Tuple, line);
    g->arg->items = std::move(args);
  }
  return g;
}

ExprPtr Parser::parse_subscribed() {
  const int line = cur().line;
  std::vector<ExprPtr> parts;
  if (skip_op(":")) {
    parts.push_back(nullptr);
  } else {
    ExprPtr e = parse_expression(true);
    if (!skip_op(":")) return e;
    parts.push_back(std::move(e));
  }
  if (is_op(":") || is_op("]") || is_op(","))
    parts.push_back(nullptr);
  else
    parts.push_back(parse_expression(true));
  if (skip_op(":")) {
    if (is_op("]") || is_op(","))
      parts.push_back(nullptr);
    else
      parts.push_back(parse_expression(true));
  } else {
    parts.push_back(nullptr);
  }
  auto s = make(Ex::Slice, line);
  s->items = std::move(parts);
  return s;
}

CallArgs Parser::parse_call_args() {
  const int line = cur().line;
  expect_op("(");
  CallArgs c;
  bool require_comma = false;
  auto ensure = [&](bool ok) {
    if (!ok) error("invalid syntax for function call expression", line);
  };
  while (!is_op(")")) {
    if (require_comma) {
      expect_op(",");
      if (is_op(")")) break;
    }
    if (skip_op("*")) {
      ensure(!c.dyn_args && !c.dyn_kwargs);
      c.dyn_args = parse_expression(true);
    } else if (skip_op("**")) {
      ensure(!c.dyn_kwargs);
      c.dyn_kwargs = parse_expression(true);
    } else if (cur().type == Tok::Name && look().type == Tok::Op && look().text == "=") {
      ensure(!c.dyn_kwargs);
      std::string key = next().text;
      next();
      c.kwargs.emplace_back(std::move(key), parse_expression(true));
    } else {
      ensure(!c.dyn_args && !c.dyn_kwargs && c.kwargs.empty());
      c.args.push_back(parse_expression(true));
    }
    require_comma = true;
  }
  expect_op(")");
  return c;
}

ExprPtr Parser::parse_call(ExprPtr node) {
  auto c = make(Ex::Call, cur().line);
  c->call = parse_call_args();
  c->node = std::move(node);
  return c;
}

std::string Parser::dotted_name() {
  std::string n = expect_name();
  while (skip_op(".")) n += "." + expect_name();
  return n;
}

ExprPtr Parser::parse_filter(ExprPtr node, bool start_inline) {
  while (is_op("|") || start_inline) {
    if (!start_inline) next();
    start_inline = false;
    const int line = cur().line;
    auto f = make(Ex::Filter, line);
    f->name = dotted_name();
    if (is_op("(")) f->call = parse_call_args();
    f->node = std::move(node);
    node = std::move(f);
  }
  return node;
}

ExprPtr Parser::parse_test(ExprPtr node) {
  const int line = next().line;
  const bool negated = skip_name("not");
  auto t = make(Ex::Test, line);
  t->name = dotted_name();
  const Token& c = cur();
  if (is_op("(")) {
    t->call = parse_call_args();
  } else if ((c.type == Tok::Name || c.type == Tok::String || c.type == Tok::Integer || c.type == Tok::Float ||
              is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) error("You cannot chain multiple tests with is");
    t->call.args.push_back(parse_postfix(parse_primary(false)));
  }
  t->node = std::move(node);
  if (!negated) return t;
  auto n = make(Ex::Not, line);
  n->node = std::move(t);
  return n;
}

}  // namespace prefopt::data::jinja
