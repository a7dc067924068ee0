// JSON in and out of template values: the reader for the caller's messages / tools / variables (as Python's
// json.loads reads them: key order kept, last duplicate key wins, NaN and Infinity accepted) and the writer
// behind the tojson filter (as Python's json.dumps writes). Never goes through a third-party JSON library, whose
// number and escape formatting differ from Python's.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "value.h"

namespace prefopt::data::jinja {

/// Parses `text`; a malformed document is a Fault "<what>: invalid JSON at byte N: ...".
Value parse_json(std::string_view text, const std::string& what);

/// json.dumps's options (transformers' tojson passes ensure_ascii=False by default).
struct JsonStyle {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  ///< None, or the text of one level (an int n is n spaces)
  std::string item_separator = ", ";  ///< "," when indent is set and separators are not
  std::string key_separator = ": ";
  bool sort_keys = false;
};

/// json.dumps(v, ...) byte for byte; a value JSON cannot hold is a Fault "Object of type X is not JSON
/// serializable", as Python's TypeError says.
std::string dump_json(const Value& v, const JsonStyle& style);

}  // namespace prefopt::data::jinja
