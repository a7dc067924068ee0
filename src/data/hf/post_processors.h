// tokenizer.json's "post_processor": what encode(text, add_special_tokens=true) adds around a sequence
// (TemplateProcessing, BertProcessing, RobertaProcessing, Sequence) and ByteLevel's offset trimming. Single
// sequences only: prefopt never encodes sentence pairs. Never changes the tokens the model produced.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "components.h"

namespace prefopt::data::hf {

/// A sequence's tokens: ids, their strings and their byte offsets in the input.
struct TokenSequence {
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
  std::vector<std::pair<std::size_t, std::size_t>> offsets;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  /// Rewrites `seq` in place; special tokens are added only when add_special_tokens.
  virtual void process(TokenSequence& seq, bool add_special_tokens) const = 0;
};

/// From tokenizer.json's "post_processor" object (JSON null: nullptr). An unknown type or a malformed template
/// is a FormatError naming the JSON path.
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const JsonContext& ctx);

}  // namespace prefopt::data::hf
