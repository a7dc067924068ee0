// jinja2's statement grammar (see parser.h): template text, {{ }} output, and the tags for, if, set (also
// block set), macro, call, filter, with, print, break / continue and transformers' generation, with jinja2's
// messages for unknown tags and unclosed blocks. Rejects the statements this engine does not run (include,
// import, extends, block, autoescape, recursive loops), naming the line. Never evaluates anything.
#include "parser.h"

#include <set>

namespace prefopt::data::jinja {

Body Parser::subparse(const std::vector<std::string>& ends) {
  Body body;
  std::unique_ptr<Stmt> output;
  auto flush = [&] {
    if (output) body.push_back(std::move(output));
  };
  auto out = [&](int line) -> Stmt& {
    if (!output) {
      output = std::make_unique<Stmt>();
      output->kind = St::Output;
      output->line = line;
    }
    return *output;
  };
  ends_.push_back(ends);
  while (cur().type != Tok::Eof) {
    const Token& tok = cur();
    if (tok.type == Tok::Data) {
      out(tok.line).pieces.push_back(Piece{tok.text, nullptr});
      next();
    } else if (tok.type == Tok::VarBegin) {
      const int line = tok.line;
      next();
      out(line).pieces.push_back(Piece{"", parse_tuple(false, true, {}, false)});
      expect(Tok::VarEnd, "end of print statement");
    } else if (tok.type == Tok::BlockBegin) {
      flush();
      next();
      if (!ends.empty() && at_end_token(ends)) {
        ends_.pop_back();
        return body;
      }
      body.push_back(parse_statement());
      expect(Tok::BlockEnd, "end of statement block");
    } else {
      error("unexpected '" + describe(tok) + "'");
    }
  }
  flush();
  ends_.pop_back();
  return body;
}

void Parser::fail_unknown(const std::string* name, int line) {
  std::string msg = name ? "Encountered unknown tag '" + *name + "'." : "Unexpected end of template.";
  const std::vector<std::string>* looking = nullptr;
  for (auto it = ends_.rbegin(); it != ends_.rend(); ++it)
    if (!it->empty()) {
      looking = &*it;
      break;
    }
  if (looking) {
    std::string names;
    for (const auto& e : *looking) names += (names.empty() ? "'" : " or '") + e + "'";
    bool expected_elsewhere = false;
    for (const auto& level : ends_)
      for (const auto& e : level)
        if (name && e == *name) expected_elsewhere = true;
    msg += expected_elsewhere ? " You probably made a nesting mistake. Jinja is expecting this tag, but currently "
                                "looking for " +
                                    names + "."
                              : " Jinja was looking for the following tags: " + names + ".";
  }
  if (!tags_.empty()) msg += " The innermost block that needs to be closed is '" + tags_.back() + "'.";
  error(msg, line);
}

Body Parser::parse_block(const std::vector<std::string>& ends, bool drop_needle) {
  skip_op(":");
  expect(Tok::BlockEnd, "end of statement block");
  Body body = subparse(ends);
  if (cur().type == Tok::Eof) {
    ends_.push_back(ends);  // name the tags still expected, as jinja2's end-of-template error does
    fail_unknown(nullptr, cur().line);
  }
  if (drop_needle) next();
  return body;
}

StmtPtr Parser::stmt(St kind, int line) {
  auto s = std::make_unique<Stmt>();
  s->kind = kind;
  s->line = line;
  return s;
}

StmtPtr Parser::parse_statement() {
  Depth depth(*this);
  const Token& tok = cur();
  if (tok.type != Tok::Name) error("tag name expected");
  const std::string name = tok.text;
  const int line = tok.line;
  static const std::set<std::string> kUnsupported = {"block", "extends", "include", "import", "from", "autoescape"};
  if (kUnsupported.count(name)) error("unsupported statement \"" + name + "\"");
  static const std::set<std::string> kKnown = {"for",  "if",    "set",        "macro", "call",    "filter",
                                               "with", "print", "generation", "break", "continue"};
  if (!kKnown.count(name)) fail_unknown(&name, line);
  tags_.push_back(name);
  next();
  StmtPtr s;
  if (name == "for")
    s = parse_for(line);
  else if (name == "if")
    s = parse_if(line);
  else if (name == "set")
    s = parse_set(line);
  else if (name == "macro")
    s = parse_macro(line);
  else if (name == "call")
    s = parse_call_block(line);
  else if (name == "filter")
    s = parse_filter_block(line);
  else if (name == "with")
    s = parse_with(line);
  else if (name == "print")
    s = parse_print(line);
  else if (name == "generation") {
    s = stmt(St::Generation, line);
    const int saved = loop_depth_;
    loop_depth_ = 0;  // the block body is a caller function in jinja2: break / continue cannot leave it
    s->body = parse_block({"endgeneration"}, true);
    loop_depth_ = saved;
  } else {
    if (loop_depth_ == 0) error("'" + name + "' outside of a loop", line);
    s = stmt(name == "break" ? St::Break : St::Continue, line);
  }
  tags_.pop_back();
  return s;
}

StmtPtr Parser::parse_for(int line) {
  auto s = stmt(St::For, line);
  s->target = parse_assign_target({"in"}, false);
  expect_keyword("in");
  s->expr = parse_tuple(false, false, {"recursive"}, false);
  if (skip_name("if")) s->cond = parse_expression(true);
  if (is_name("recursive")) error("unsupported statement \"for ... recursive\"");
  ++loop_depth_;
  s->body = parse_block({"endfor", "else"}, false);
  --loop_depth_;
  if (next().text == "else") s->else_body = parse_block({"endfor"}, true);
  return s;
}

StmtPtr Parser::parse_if(int line) {
  auto s = stmt(St::If, line);
  while (true) {
    ExprPtr test = parse_tuple(false, false, {}, false);
    Body body = parse_block({"elif", "else", "endif"}, false);
    s->branches.emplace_back(std::move(test), std::move(body));
    const std::string which = next().text;
    if (which == "elif") continue;
    if (which == "else") s->else_body = parse_block({"endif"}, true);
    break;
  }
  return s;
}

StmtPtr Parser::parse_set(int line) {
  ExprPtr target = parse_assign_target({}, true);
  if (skip_op("=")) {
    auto s = stmt(St::Set, line);
    s->target = std::move(target);
    s->expr = parse_tuple(false, true, {}, false);
    return s;
  }
  auto s = stmt(St::SetBlock, line);
  s->target = std::move(target);
  if (is_op("|")) s->expr = parse_filter(nullptr, false);
  s->body = parse_block({"endset"}, true);
  return s;
}

void Parser::parse_signature(Stmt& s) {
  expect_op("(");
  while (!is_op(")")) {
    if (!s.params.empty()) expect_op(",");
    s.params.push_back(expect_name());
    if (skip_op("="))
      s.defaults.push_back(parse_expression(true));
    else if (!s.defaults.empty())
      error("non-default argument follows default argument");
  }
  expect_op(")");
}

StmtPtr Parser::parse_macro(int line) {
  auto s = stmt(St::Macro, line);
  s->name = expect_name();
  parse_signature(*s);
  const int saved = loop_depth_;
  loop_depth_ = 0;  // a macro body is a function: break / continue cannot leave it
  s->body = parse_block({"endmacro"}, true);
  loop_depth_ = saved;
  scan_macro_names(*s);
  return s;
}

StmtPtr Parser::parse_call_block(int line) {
  auto s = stmt(St::CallBlock, line);
  if (is_op("(")) parse_signature(*s);
  s->expr = parse_expression(true);
  if (s->expr->kind != Ex::Call) error("expected call", line);
  const int saved = loop_depth_;
  loop_depth_ = 0;
  s->body = parse_block({"endcall"}, true);
  loop_depth_ = saved;
  scan_macro_names(*s);
  return s;
}

StmtPtr Parser::parse_filter_block(int line) {
  auto s = stmt(St::FilterBlock, line);
  s->expr = parse_filter(nullptr, true);
  s->body = parse_block({"endfilter"}, true);
  return s;
}

StmtPtr Parser::parse_with(int line) {
  auto s = stmt(St::With, line);
  while (cur().type != Tok::BlockEnd) {
    if (!s->targets.empty()) expect_op(",");
    s->targets.push_back(parse_assign_target({}, false));
    expect_op("=");
    s->values.push_back(parse_expression(true));
  }
  s->body = parse_block({"endwith"}, true);
  return s;
}

StmtPtr Parser::parse_print(int line) {
  auto s = stmt(St::Output, line);
  while (cur().type != Tok::BlockEnd) {
    if (!s->pieces.empty()) expect_op(",");
    s->pieces.push_back(Piece{"", parse_expression(true)});
  }
  return s;
}

ExprPtr Parser::parse_assign_target(const std::vector<std::string>& extra_end, bool with_namespace) {
  const int line = cur().line;
  ExprPtr target = parse_tuple(true, true, extra_end, false, with_namespace);
  auto assignable = [](const Expr& e) { return e.kind == Ex::Name || e.kind == Ex::NSRef; };
  bool ok = assignable(*target);
  if (target->kind == Ex::Tuple) {
    ok = true;
    for (const auto& item : target->items) ok = ok && assignable(*item);
  }
  if (target->kind == Ex::Name && (target->name == "true" || target->name == "none")) ok = false;
  if (!ok) error("can't assign to " + std::string(target->kind == Ex::Const ? "'const'" : "this expression"), line);
  return target;
}

std::shared_ptr<const Program> parse_template(std::string_view source) {
  std::shared_ptr<const Program> prog = Parser(tokenize(source)).run();
  check_names(*prog);
  return prog;
}

}  // namespace prefopt::data::jinja
