// The parser's shared declarations: the Parser class (its token-stream helpers inline here, its statement
// rules in parser.cpp, its expression rules in parse_expr.cpp) and the post-parse analysis of analysis.cpp.
// Never evaluates anything.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "ast.h"
#include "lexer.h"

namespace prefopt::data::jinja {

constexpr int kMaxNesting = 200;  // expression and block depth: deeper is surely not a chat template

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  std::shared_ptr<const Program> run() {
    auto prog = std::make_shared<Program>();
    prog->body = subparse({});
    return prog;
  }

 private:
  const Token& cur() const { return t_[p_]; }
  const Token& look() const { return t_[std::min(p_ + 1, t_.size() - 1)]; }
  const Token& next() {
    const Token& t = t_[p_];
    if (p_ + 1 < t_.size()) ++p_;
    return t;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  [[noreturn]] void error(const std::string& msg, int line = 0) const { throw Fault{msg, line ? line : cur().line}; }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Data: return "template data / text";
      case Tok::VarBegin: return "begin of print statement";
      case Tok::VarEnd: return "end of print statement";
      case Tok::BlockBegin: return "begin of statement block";
      case Tok::BlockEnd: return "end of statement block";
      case Tok::Name:
      case Tok::Op: return t.text;
      case Tok::String: return "string";
      case Tok::Integer: return "integer";
      case Tok::Float: return "float";
      case Tok::Eof: return "end of template";
    }
    return "token";
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error(std::string("expected token '") + op + "', got '" + describe(cur()) + "'");
  }
  void expect(Tok type, const char* what) {
    if (cur().type != type) error(std::string("expected token '") + what + "', got '" + describe(cur()) + "'");
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error("expected token 'name', got '" + describe(cur()) + "'");
    return next().text;
  }
  void expect_keyword(const char* n) {
    if (!skip_name(n)) error(std::string("expected token '") + n + "', got '" + describe(cur()) + "'");
  }

  struct Depth {  // bounds recursion so that a hostile template cannot overflow the stack
    explicit Depth(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting) p_.error("template nested too deeply (more than 200 levels)");
    }
    ~Depth() { --p_.depth_; }
    Parser& p_;
  };

  ExprPtr make(Ex kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  bool at_end_token(const std::vector<std::string>& ends) const {
    if (cur().type != Tok::Name) return false;
    for (const auto& e : ends)
      if (cur().text == e) return true;
    return false;
  }
  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  // statements (parser.cpp)
  Body subparse(const std::vector<std::string>& ends);
  [[noreturn]] void fail_unknown(const std::string* name, int line);
  Body parse_block(const std::vector<std::string>& ends, bool drop_needle);
  StmtPtr stmt(St kind, int line);
  StmtPtr parse_statement();
  StmtPtr parse_for(int line);
  StmtPtr parse_if(int line);
  StmtPtr parse_set(int line);
  void parse_signature(Stmt& s);
  StmtPtr parse_macro(int line);
  StmtPtr parse_call_block(int line);
  StmtPtr parse_filter_block(int line);
  StmtPtr parse_with(int line);
  StmtPtr parse_print(int line);
  ExprPtr parse_assign_target(const std::vector<std::string>& extra_end, bool with_namespace);

  // expressions (parse_expr.cpp)
  ExprPtr parse_condexpr();
  ExprPtr binary(Ex kind, int line, ExprPtr left, ExprPtr right, std::string op = {});
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary(bool with_namespace);
  bool is_tuple_end(const std::vector<std::string>& extra_end) const;
  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                      bool explicit_parens, bool with_namespace = false);
  ExprPtr parse_list();
  ExprPtr parse_dict();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node);
  ExprPtr parse_subscribed();
  CallArgs parse_call_args();
  ExprPtr parse_call(ExprPtr node);
  std::string dotted_name();
  ExprPtr parse_filter(ExprPtr node, bool start_inline);
  ExprPtr parse_test(ExprPtr node);

  std::vector<Token> t_;
  std::size_t p_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::vector<std::string>> ends_;
  std::vector<std::string> tags_;
};

/// Which of varargs / kwargs / caller a macro (or call block) body reads: that decides how its calls bind, as
/// jinja2 decides it.
void scan_macro_names(Stmt& macro);
/// jinja2's compile-time checks: a filter or test jinja2 does not know is an error unless it sits in an if
/// statement or an inline if (jinja2 defers those to render time). A Fault with the line.
void check_names(const Program& prog);

}  // namespace prefopt::data::jinja
