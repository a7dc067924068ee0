// The regular expressions of tokenizer.json (Split patterns, Replace, ByteLevel's split), compiled once with PCRE2
// in UTF and Unicode-property mode and JIT-compiled when the platform allows. Never matches invalid UTF-8: callers
// validate text once at the tokenizer's entry, so matching skips PCRE2's per-call UTF check.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "components.h"

namespace prefopt::data::hf {

class Regex {
 public:
  /// Compiles `pattern` (PCRE2 syntax, which covers the Oniguruma patterns tokenizer.json files use).
  /// An invalid pattern is a FormatError through ctx.fail naming the offset and PCRE2's reason.
  Regex(std::string_view pattern, const JsonContext& ctx);
  /// A regex matching `literal` exactly (tokenizer.json's {"String": ...} patterns).
  static Regex literal(std::string_view literal, const JsonContext& ctx);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Every non-overlapping match of the pattern in `text` (valid UTF-8), left to right, as byte ranges
  /// [begin, end). After an empty match the search resumes one character later, and an empty match where the
  /// previous match ended is not reported, as Rust's and Oniguruma's find_iter do. Safe to call from several
  /// threads at once.
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit Regex(std::unique_ptr<Impl> impl);
};

}  // namespace prefopt::data::hf
