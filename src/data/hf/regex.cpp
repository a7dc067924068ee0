// PCRE2 behind Regex: compile (UTF | UCP, JIT when available) and find-all. Never copies the subject text and never
// re-validates its UTF-8 (the tokenizer's entry did).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <pcre2.h>

#include <cctype>

#include "utf8.h"

namespace prefopt::data::hf {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

namespace {

std::string escape_literal(std::string_view s) {
  // \Q...\E would break on a literal containing "\E"; escaping every non-alphanumeric ASCII byte is always safe.
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80 && !std::isalnum(c)) out.push_back('\\');
    out.push_back(static_cast<char>(c));
  }
  return out;
}

}  // namespace

Regex::Regex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Regex::Regex(std::string_view pattern, const JsonContext& ctx) : impl_(std::make_unique<Impl>()) {
  if (!utf8::valid(pattern)) ctx.fail("pattern is not valid UTF-8");
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                              &error, &offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    ctx.fail("invalid regex \"" + std::string(pattern) + "\" at offset " + std::to_string(offset) + ": " +
             reinterpret_cast<const char*>(message));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex Regex::literal(std::string_view literal, const JsonContext& ctx) { return Regex(escape_literal(literal), ctx); }

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

void Regex::find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  out.clear();
  // One small match block per call: match data is not shareable between threads, and this one holds one pair.
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(pcre2_match_data_create(1, nullptr),
                                                                           &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0, last_end = 0;
  bool matched = false;
  while (start <= text.size()) {
    const int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), start, 0, data.get(), nullptr)
                              : pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data.get(),
                                            nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw FormatError(std::string("regex match failed: ") + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
    const std::size_t b = ov[0], e = ov[1];
    if (b == e && matched && e == last_end) {
      // Rust's and Oniguruma's find_iter never report an empty match where the previous match ended.
      if (e >= text.size()) break;
      start = e + utf8::char_length(static_cast<unsigned char>(text[e]));
      continue;
    }
    out.emplace_back(b, e);
    matched = true;
    last_end = e;
    if (e > b) {
      start = e;
    } else {
      if (e >= text.size()) break;
      start = e + utf8::char_length(static_cast<unsigned char>(text[e]));
    }
  }
}

}  // namespace prefopt::data::hf
