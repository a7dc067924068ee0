// Leftmost-longest matching of added tokens over a byte trie, and Hugging Face's rules around a match: a
// single_word token only counts between non-word characters, lstrip / rstrip swallow the whitespace beside it.
// Never allocates per character: the trie is walked in place and a first-byte table skips positions fast.
#include "added_vocabulary.h"

#include <algorithm>
#include <unordered_set>

#include <utf8proc.h>

#include "utf8.h"

namespace prefopt::data::hf {
namespace {

// Rust's regex \w: alphabetic, marks, decimal digits, connector punctuation and the joiners.
bool is_word_char(char32_t cp) {
  if (cp == 0x200C || cp == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// Unicode White_Space, which is what Rust's regex \s matches.
bool is_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// The code point ending at byte `end` of `s` (end > 0, valid UTF-8).
char32_t char_before(std::string_view s, std::size_t end, std::size_t* start) {
  std::size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  std::size_t length = 0;
  *start = i;
  return utf8::decode(s, i, &length);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<std::string> patterns, std::vector<const AddedToken*> tokens)
    : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (std::size_t p = 0; p < patterns.size(); ++p) {
    const std::string& pattern = patterns[p];
    if (pattern.empty()) continue;  // Hugging Face ignores empty contents (a normalizer may erase one)
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
    int32_t node = 0;
    for (const char ch : pattern) {
      const auto byte = static_cast<unsigned char>(ch);
      auto& children = nodes_[node].children;
      auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1}));
      if (it != children.end() && it->first == byte) {
        node = it->second;
      } else {
        const auto next = static_cast<int32_t>(nodes_.size());
        children.insert(it, {byte, next});
        nodes_.emplace_back();  // invalidates `children`; it is not used again in this iteration
        node = next;
      }
    }
    // Two tokens with the same pattern: the first one declared wins, as the Aho-Corasick builder keeps the first.
    if (nodes_[node].terminal < 0) nodes_[node].terminal = static_cast<int32_t>(p);
  }
}

int32_t AddedTokenMatcher::longest_at(std::string_view text, std::size_t pos, std::size_t* length) const {
  int32_t node = 0, found = -1;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const auto& children = nodes_[node].children;
    auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1}));
    if (it == children.end() || it->first != byte) break;
    node = it->second;
    if (nodes_[node].terminal >= 0) {
      found = nodes_[node].terminal;
      *length = i + 1 - pos;
    }
  }
  return found;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<AddedSplit>& out) const {
  out.clear();
  if (text.empty()) {
    out.push_back({-1, 0, 0});
    return;
  }
  std::size_t covered = 0;  // everything before this is already in `out`
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    std::size_t length = 0;
    const int32_t p = longest_at(text, pos, &length);
    if (p < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = *tokens_[p];
    std::size_t start = pos, stop = pos + length;
    if (token.single_word) {
      std::size_t unused = 0;
      const bool left_ok = start == 0 || !is_word_char(char_before(text, start, &unused));
      std::size_t next_length = 0;
      const bool right_ok = stop == text.size() || !is_word_char(utf8::decode(text, stop, &next_length));
      if (!left_ok || !right_ok) {
        // Not a match here; the matcher resumes after this match, as Aho-Corasick's non-overlapping find_iter does.
        pos = stop;
        continue;
      }
    }
    if (token.lstrip) {
      std::size_t s = start;
      while (s > covered) {
        std::size_t before = 0;
        if (!is_space(char_before(text, s, &before))) break;
        s = before;
      }
      start = s;
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        std::size_t n = 0;
        if (!is_space(utf8::decode(text, stop, &n))) break;
        stop += n;
      }
    }
    if (covered < start) out.push_back({-1, covered, start});
    out.push_back({token.id, start, stop});
    covered = stop;
    pos = stop;
  }
  if (covered < text.size()) out.push_back({-1, covered, text.size()});
}

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& j, const JsonContext& ctx) {
  std::vector<AddedToken> tokens;
  if (j.is_null()) return tokens;
  if (!j.is_array()) ctx.fail("expected a list of added tokens, got " + std::string(j.type_name()));
  std::unordered_set<int32_t> ids;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const JsonContext at = ctx.at(i);
    const nlohmann::json& t = j[i];
    if (!t.is_object()) at.fail("expected an object, got " + std::string(t.type_name()));
    AddedToken token;
    if (!t.contains("id") || !t["id"].is_number_unsigned()) at.at("id").fail("expected a non-negative integer id");
    if (t["id"].get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)) at.at("id").fail("id too large");
    token.id = static_cast<int32_t>(t["id"].get<uint64_t>());
    if (!t.contains("content") || !t["content"].is_string()) at.at("content").fail("expected a string");
    token.content = t["content"].get<std::string>();
    if (token.content.empty()) at.at("content").fail("an added token's content must not be empty");
    if (!utf8::valid(token.content)) at.at("content").fail("not valid UTF-8");
    const auto flag = [&](const char* key, bool fallback) {
      if (!t.contains(key) || t[key].is_null()) return fallback;
      if (!t[key].is_boolean()) at.at(key).fail("expected a boolean, got " + std::string(t[key].type_name()));
      return t[key].get<bool>();
    };
    token.special = flag("special", false);
    token.single_word = flag("single_word", false);
    token.lstrip = flag("lstrip", false);
    token.rstrip = flag("rstrip", false);
    token.normalized = flag("normalized", !token.special);
    if (!ids.insert(token.id).second) at.at("id").fail("duplicate added-token id " + std::to_string(token.id));
    tokens.push_back(std::move(token));
  }
  return tokens;
}

}  // namespace prefopt::data::hf
