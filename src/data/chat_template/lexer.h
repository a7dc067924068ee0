// Splits a chat template's source into tokens the way jinja2's lexer does under transformers' settings
// (trim_blocks, lstrip_blocks, keep_trailing_newline=False, newlines normalised to "\n"): template text,
// {{ }} / {% %} delimiters and the names, literals and operators inside them. Comments are dropped and
// {% raw %} bodies come out as text. Never interprets a tag: that is the parser's job.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "value.h"

namespace prefopt::data::jinja {

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Op, Eof };

struct Token {
  Tok type = Tok::Eof;
  std::string text;  ///< Data: the text; Name: the name; Op: the operator; String: the unescaped value
  Value value;       ///< Integer / Float: the number
  int line = 1;
};

/// The tokens of `source`, ending with Eof. A lexical error is a Fault with the line set.
std::vector<Token> tokenize(std::string_view source);

}  // namespace prefopt::data::jinja
