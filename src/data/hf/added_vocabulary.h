// tokenizer.json's "added_tokens": the tokens matched in the text before the model runs (special tokens such as
// <|im_start|>, and user-added words), with their single_word / lstrip / rstrip / normalized semantics, found
// leftmost-longest as Hugging Face's Aho-Corasick matcher finds them. Never normalizes text itself: the caller
// matches raw text with the non-normalized set and normalized text with the normalized set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "components.h"

namespace prefopt::data::hf {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

/// One piece of a split: a run of text to tokenize (id < 0) or a matched added token (id >= 0), as the byte
/// range [begin, end) of the text that was split (lstrip / rstrip widen an added token's range over spaces).
struct AddedSplit {
  int32_t id = -1;
  std::size_t begin = 0;
  std::size_t end = 0;
};

/// A set of patterns (added tokens' contents, or their normalized forms) matched leftmost-longest.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  /// `patterns[i]` is matched for `tokens[i]` (whose flags decide single_word / lstrip / rstrip).
  AddedTokenMatcher(std::vector<std::string> patterns, std::vector<const AddedToken*> tokens);
  bool empty() const { return tokens_.empty(); }
  /// Splits `text` into runs and added tokens covering it entirely, in order (one empty run for an empty text).
  void split(std::string_view text, std::vector<AddedSplit>& out) const;

 private:
  // A byte trie: node 0 is the root; each node's children sorted by byte; `terminal` is the pattern ending there.
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t terminal = -1;
  };
  std::vector<Node> nodes_;
  std::vector<const AddedToken*> tokens_;
  bool first_byte_[256] = {};
  // The longest pattern starting at text[pos], or -1.
  int32_t longest_at(std::string_view text, std::size_t pos, std::size_t* length) const;
};

/// Reads tokenizer.json's "added_tokens" array (`ctx` locates it). A token without "id" or "content", a
/// duplicate id, or an empty content is a FormatError naming its JSON path.
std::vector<AddedToken> parse_added_tokens(const nlohmann::json& j, const JsonContext& ctx);

}  // namespace prefopt::data::hf
