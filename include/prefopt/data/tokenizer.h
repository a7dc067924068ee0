// Tokenizers: the interface the data layer encodes text and renders conversations through, and its
// dependency-free default, a byte-level tokenizer (one id per UTF-8 byte plus three special tokens) with
// prefopt's built-in chat template. Never normalises, lower-cases or re-encodes text: the bytes given are the
// bytes encoded, and decode gives them back. Hugging Face tokenizers are in hf_tokenizer.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "records.h"

namespace prefopt::data {

/// The interface every tokenizer implements (ByteTokenizer, HFTokenizer), so that the readers and the collators
/// never depend on one. Implementations must be usable from several threads at once
/// through const methods.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// The ids of `text`, without any special token (the encoder adds BOS and EOS itself).
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  /// The ids of `text` with the special tokens the tokenizer itself puts around a text (a Hugging Face
  /// post-processor's BOS, as transformers' tokenizer(text) gives them). Default: encode(text).
  virtual std::vector<int64_t> encode_with_special_tokens(std::string_view text) const { return encode(text); }
  /// The text of `ids`; special tokens are dropped when skip_special_tokens, else rendered by the tokenizer
  /// (ByteTokenizer: "<pad>", "<bos>", "<eos>"). An id outside [0, vocab_size()) raises an error.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const = 0;
  /// Number of ids; every id it produces is in [0, vocab_size()).
  virtual int64_t vocab_size() const = 0;
  /// The beginning-of-sequence id put before each text prompt, or nullopt if the tokenizer has none.
  virtual std::optional<int64_t> bos_id() const = 0;
  /// The end-of-sequence id put after each text completion, or nullopt if the tokenizer has none.
  virtual std::optional<int64_t> eos_id() const = 0;
  /// The id the collators pad with by default (padding is always masked out, so any valid id works).
  virtual int64_t pad_id() const = 0;

  /// Whether the tokenizer carries its model's own chat template. The encoder renders conversations with
  /// apply_chat_template either way; with the model's template it appends no EOS to a conversational completion
  /// (the template ends the turn itself), as TRL does.
  virtual bool has_chat_template() const { return false; }
  /// `messages` as text, as transformers' apply_chat_template(messages, tokenize=False, add_generation_prompt,
  /// continue_final_message) renders them. This default renders prefopt's built-in template (records.h:
  /// render_conversation), the generation prompt being "<|assistant|>\n" and continue_final_message leaving the
  /// last message's content open (no "\n" after it).
  virtual std::string apply_chat_template(const std::vector<Message>& messages, bool add_generation_prompt,
                                          bool continue_final_message) const;
};

/// Byte-level tokenizer: the id of each byte of the (UTF-8) text is the byte's value, 0..255; then
/// pad = 256, bos = 257, eos = 258, so vocab_size() = 259. Every byte string round-trips exactly:
/// decode(encode(s), true) == s, including invalid UTF-8 and NUL bytes.
///
/// Example:
/// ```
/// prefopt::data::ByteTokenizer tok;
/// tok.encode("hé");                 // {104, 195, 169}
/// tok.decode({257, 104, 105, 258}, /*skip_special_tokens=*/true);   // "hi"
/// tok.decode({257, 104, 105, 258}, /*skip_special_tokens=*/false);  // "<bos>hi<eos>"
/// ```
class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int64_t kPadId = 256;
  static constexpr int64_t kBosId = 257;
  static constexpr int64_t kEosId = 258;
  static constexpr int64_t kVocabSize = 259;

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  int64_t vocab_size() const override { return kVocabSize; }
  std::optional<int64_t> bos_id() const override { return kBosId; }
  std::optional<int64_t> eos_id() const override { return kEosId; }
  int64_t pad_id() const override { return kPadId; }
};

}  // namespace prefopt::data
