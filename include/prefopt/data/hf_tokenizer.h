// Hugging Face tokenizers, natively: a tokenizer.json pipeline (added tokens, normalizer, pre-tokenizer,
// BPE / WordPiece / Unigram model, post-processor, decoder) with the special tokens and chat template of
// tokenizer_config.json, giving the ids the Rust `tokenizers` library gives. Never downloads anything, never runs
// Python, and never accepts invalid UTF-8 text (an error names the byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat_template.h"
#include "tokenizer.h"

namespace prefopt::data {

/// One encoded text with what each token covers.
struct Encoding {
  std::vector<int64_t> ids;
  /// The tokens' strings in the vocabulary (byte-level ones in GPT-2's printable form, e.g. "Ġhello").
  std::vector<std::string> tokens;
  /// Byte range [begin, end) of the input text each token came from; (0, 0) for special tokens the
  /// post-processor added. Hugging Face's Python API reports the same ranges in characters.
  std::vector<std::pair<std::size_t, std::size_t>> offsets;
};

/// A Hugging Face fast tokenizer (tokenizer.json), with tokenizer_config.json's special tokens and chat
/// template when loaded from a folder. Immutable once loaded; copies share the loaded pipeline; every method is
/// const and safe from several threads at once.
///
/// Loading errors name the file and the JSON path:
///     ckpt/tokenizer.json: $.pre_tokenizer.pretokenizers[0].type: unknown pre-tokenizer type "Foo"; expected ...
///     ckpt/tokenizer.json: $.model.merges[12]: merge "a b" names "b", which is not in the vocabulary
///     ckpt/tokenizer_config.json: $.eos_token: "<|end|>" is not a token of tokenizer.json
///
/// Example:
/// ```
/// auto tok = prefopt::data::HFTokenizer::from_pretrained("Qwen2.5-0.5B-Instruct");
/// auto ids = tok.encode("Hello world", /*add_special_tokens=*/true);   // as AutoTokenizer(...)("Hello world")
/// tok.decode(ids, /*skip_special_tokens=*/true);                      // "Hello world"
/// std::string text = tok.apply_chat_template({{"user", "Hi"}}, /*add_generation_prompt=*/true, false);
/// ```
class HFTokenizer final : public Tokenizer {
 public:
  /// A tokenizer.json file alone (no BOS / EOS / PAD / chat template: those live in tokenizer_config.json).
  static HFTokenizer from_file(const std::string& tokenizer_json_path);
  /// A checkpoint folder: tokenizer.json (required), tokenizer_config.json (special tokens, chat_template),
  /// chat_template.jinja (transformers >= 4.43 writes the template there), special_tokens_map.json (older
  /// folders). A folder without tokenizer.json is an error that says how to produce one.
  static HFTokenizer from_pretrained(const std::string& folder);
  /// tokenizer.json's content as text; `source` names it in errors.
  static HFTokenizer from_json_string(const std::string& json_text, const std::string& source = "tokenizer.json");

  /// The ids of `text` without special tokens (Tokenizer's contract; the post-processor is not applied).
  std::vector<int64_t> encode(std::string_view text) const override;
  /// The ids of `text`; add_special_tokens applies the post-processor (e.g. Llama's BOS), as transformers'
  /// tokenizer(text) does by default.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const;
  std::vector<int64_t> encode_with_special_tokens(std::string_view text) const override { return encode(text, true); }
  Encoding encode_with_offsets(std::string_view text, bool add_special_tokens) const;
  /// encode over many texts on `num_threads` threads (0: the hardware's), results in input order.
  std::vector<std::vector<int64_t>> encode_batch(const std::vector<std::string>& texts, bool add_special_tokens,
                                                 int64_t num_threads = 0) const;

  /// The text of `ids` through the decoder; special tokens (added tokens marked special) are dropped when
  /// skip_special_tokens. An id that is no token is an error naming it.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int64_t id) const;
  /// Whether `id` is an added token marked special.
  bool is_special(int64_t id) const;

  /// 1 + the largest id of the model's vocabulary and the added tokens (transformers' len(tokenizer) when ids
  /// are dense).
  int64_t vocab_size() const override;
  std::optional<int64_t> bos_id() const override;
  std::optional<int64_t> eos_id() const override;
  /// pad_token's id; else eos's; else 0 (padding is masked out, any valid id works).
  int64_t pad_id() const override;
  /// tokenizer_config.json's named special tokens that are set, e.g. {"bos_token", "<s>"}, {"eos_token", "</s>"},
  /// in a fixed order (bos, eos, unk, sep, pad, cls, mask): the variables a chat template sees.
  const std::vector<std::pair<std::string, std::string>>& special_tokens() const;

  /// Whether a chat template was found (tokenizer_config.json's chat_template, or chat_template.jinja).
  bool has_chat_template() const override;
  /// The names of the templates found ("default" for a single one).
  std::vector<std::string> chat_template_names() const;
  /// Renders a conversation with the model's chat template (the "default" one, or `template_name`), the special
  /// tokens given as variables, as transformers' apply_chat_template(tokenize=False) does. Without a template it
  /// is an error.
  std::string apply_chat_template(const std::vector<Message>& messages, bool add_generation_prompt,
                                  bool continue_final_message) const override;
  RenderedChat apply_chat_template(ChatTemplateInputs inputs, const std::string& template_name = "") const;

  /// Writes tokenizer.json (as loaded), tokenizer_config.json (special tokens, chat_template) and
  /// special_tokens_map.json into `folder` (created if needed), each file replaced atomically, so that
  /// transformers' AutoTokenizer.from_pretrained(folder) loads this tokenizer.
  void save_pretrained(const std::string& folder) const;

  struct Impl;

 private:
  explicit HFTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace prefopt::data
