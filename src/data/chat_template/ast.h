// The parsed form of a chat template: jinja2's node types reduced to what the renderer needs, each with its
// template line for error messages. Plain immutable data once parsed: shared by every render, on any thread.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "value.h"

namespace prefopt::data::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class Ex {
  Const,    ///< value
  Name,     ///< name
  Getattr,  ///< node.name
  Getitem,  ///< node[arg]
  Slice,    ///< items = {start, stop, step}, each may be null (only as a Getitem's arg)
  Call,     ///< node(call)
  Filter,   ///< node|name(call); a null node stands for the value being filtered (filter / set blocks)
  Test,     ///< node is name(call)
  Neg,      ///< -node
  Pos,      ///< +node
  Not,      ///< not node
  Binary,   ///< node <name> arg, name one of + - * / // % **
  Concat,   ///< items joined with ~
  Compare,  ///< items[0] ops[0] items[1] ops[1] items[2] ... (ops: == != < <= > >= in notin)
  And,      ///< node and arg
  Or,       ///< node or arg
  Cond,     ///< node if arg else third (third may be null)
  List,     ///< [items]
  Tuple,    ///< (items)
  Dict,     ///< {items[0]: items[1], items[2]: items[3], ...}
  NSRef,    ///< name.attr as an assignment target
};

struct CallArgs {
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;    ///< *args
  ExprPtr dyn_kwargs;  ///< **kwargs
};

struct Expr {
  Ex kind = Ex::Const;
  int line = 0;
  Value value;
  std::string name;
  std::string attr;
  ExprPtr node;
  ExprPtr arg;
  ExprPtr third;
  std::vector<ExprPtr> items;
  std::vector<std::string> ops;
  CallArgs call;
};

enum class St {
  Output,       ///< pieces: template text and {{ expressions }}
  If,           ///< branches (test, body)..., else_body
  For,          ///< for target in expr [if cond]: body, else_body
  Set,          ///< target = expr
  SetBlock,     ///< {% set target | filter %}body{% endset %} (expr: the filter chain or null)
  Macro,        ///< macro name(params = defaults): body
  CallBlock,    ///< {% call(params) expr %}body{% endcall %}: body is the caller
  FilterBlock,  ///< {% filter expr %}body{% endfilter %}
  With,         ///< with targets = values: body
  Break,
  Continue,
  Generation,  ///< {% generation %}body{% endgeneration %} (transformers' assistant-mask tag)
};

struct Piece {
  std::string text;  ///< used when expr is null
  ExprPtr expr;
};

struct Stmt {
  St kind = St::Output;
  int line = 0;
  std::vector<Piece> pieces;
  ExprPtr target;
  ExprPtr expr;
  ExprPtr cond;
  Body body;
  Body else_body;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  ///< for the last defaults.size() params
  bool catch_varargs = false;     ///< the body reads `varargs`: extra positional arguments go there
  bool catch_kwargs = false;      ///< the body reads `kwargs`: unknown keyword arguments go there
  bool uses_caller = false;       ///< the body reads `caller`
  std::vector<ExprPtr> targets;   ///< With
  std::vector<ExprPtr> values;    ///< With
};

struct Program {
  Body body;
};

/// Parses a template; a syntax error is a Fault with its line.
std::shared_ptr<const Program> parse_template(std::string_view source);

}  // namespace prefopt::data::jinja
