// The byte-level tokenizer: each byte is its own id, three special ids follow the 256 byte values. Never
// validates or changes UTF-8: bytes in, the same bytes out.
#include <prefopt/data/tokenizer.h>

#include <c10/util/Exception.h>

namespace prefopt::data {

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (const char c : text) ids.push_back(static_cast<int64_t>(static_cast<unsigned char>(c)));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string text;
  text.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    TORCH_CHECK(id >= 0 && id < kVocabSize, "ByteTokenizer::decode: ids[", i, "] = ", id,
                " is outside the vocabulary [0, ", kVocabSize, ")");
    if (id < 256) {
      text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    } else if (!skip_special_tokens) {
      text += id == kPadId ? "<pad>" : id == kBosId ? "<bos>" : "<eos>";
    }
  }
  return text;
}

std::string Tokenizer::apply_chat_template(const std::vector<Message>& messages, bool add_generation_prompt,
                                           bool continue_final_message) const {
  TORCH_CHECK(!(add_generation_prompt && continue_final_message),
              "apply_chat_template: add_generation_prompt and continue_final_message cannot both be set");
  std::string text = render_conversation(messages);
  if (continue_final_message) {
    TORCH_CHECK(!messages.empty(), "apply_chat_template: continue_final_message needs a message to continue");
    text.pop_back();  // the "\n" that closes every message
  }
  if (add_generation_prompt) text += "<|assistant|>\n";
  return text;
}

}  // namespace prefopt::data
