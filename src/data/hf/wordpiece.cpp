// The WordPiece model of tokenizer.json: greedy longest-match-first splitting of a word into vocabulary pieces,
// later pieces spelled with the continuing-subword prefix ("##"), exactly as Hugging Face's tokenizers does.
// Never splits a word partly: a word with any part missing from the vocabulary becomes one unknown token.
#include <algorithm>

#include "models_internal.h"
#include "utf8.h"

namespace prefopt::data::hf::model_impl {
namespace {

class WordPiece final : public Model {
 public:
  WordPiece(const nlohmann::json& j, const JsonContext& ctx);

  void tokenize(std::string_view piece, std::vector<Token>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.find(token); }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
    return &id_to_token_[id];
  }
  std::size_t vocab_size() const override { return id_to_token_.size(); }

 private:
  void unknown(std::string_view piece, std::vector<Token>& out) const;

  StringIdMap vocab_;
  // The vocabulary's prefixed tokens keyed without their prefix, so a later piece is looked up without first
  // building prefix + piece.
  StringIdMap continuing_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::string unk_token_;
  std::optional<int32_t> unk_id_;
  JsonContext unk_ctx_;
  std::string prefix_;
  uint64_t max_chars_ = 100;
};

WordPiece::WordPiece(const nlohmann::json& j, const JsonContext& ctx) {
  // Rust requires every field (only "type" may be left out), and none may be null.
  const nlohmann::json* vocab = field(j, "vocab");
  if (vocab == nullptr) ctx.fail("missing field \"vocab\"");
  unk_token_ = required_string(j, "unk_token", ctx);
  unk_ctx_ = ctx.at("unk_token");
  prefix_ = required_string(j, "continuing_subword_prefix", ctx);
  const nlohmann::json* max_chars = field(j, "max_input_chars_per_word");
  if (max_chars == nullptr) ctx.fail("missing field \"max_input_chars_per_word\"");
  if (!max_chars->is_number_unsigned())
    ctx.at("max_input_chars_per_word").fail("expected a non-negative integer, got " + json_kind(*max_chars));
  max_chars_ = max_chars->get<uint64_t>();

  std::size_t bound = 0;
  vocab_ = read_vocab_object(*vocab, ctx.at("vocab"), &bound);
  id_to_token_ = invert_vocab(vocab_, bound);
  has_id_.assign(bound, false);
  vocab_.for_each([&](std::string_view token, int32_t id) {
    has_id_[id] = true;
    if (token.compare(0, prefix_.size(), prefix_) == 0) continuing_.insert(token.substr(prefix_.size()), id);
  });
  // As in Rust, a missing unk token is an error only when a word needs it.
  unk_id_ = vocab_.find(unk_token_);
}

void WordPiece::unknown(std::string_view piece, std::vector<Token>& out) const {
  if (!unk_id_) unk_ctx_.fail("unk token \"" + unk_token_ + "\" is not in the vocabulary, and the text needs it");
  out.push_back(Token{*unk_id_, unk_token_, 0, static_cast<uint32_t>(piece.size())});
}

void WordPiece::tokenize(std::string_view piece, std::vector<Token>& out) const {
  thread_local std::vector<uint32_t> bounds;  // byte offset of every character, and the end
  bounds.clear();
  for (std::size_t i = 0; i < piece.size();) {
    bounds.push_back(static_cast<uint32_t>(i));
    i += std::min(utf8::char_length(static_cast<unsigned char>(piece[i])), piece.size() - i);
  }
  const std::size_t chars = bounds.size();
  bounds.push_back(static_cast<uint32_t>(piece.size()));
  if (chars > max_chars_) return unknown(piece, out);

  const std::size_t first_out = out.size();
  std::size_t start = 0;  // in characters
  while (start < chars) {
    const StringIdMap& table = start == 0 ? vocab_ : continuing_;
    const std::size_t longest = table.max_key_length();
    std::optional<int32_t> id;
    std::size_t end = chars;
    for (; end > start; --end) {
      const std::size_t bytes = bounds[end] - bounds[start];
      if (bytes > longest) continue;  // no token is that long
      id = table.find(piece.substr(bounds[start], bytes));
      if (id) break;
    }
    if (!id) {
      out.resize(first_out);
      return unknown(piece, out);
    }
    std::string value;
    if (start > 0) value = prefix_;
    value.append(piece.substr(bounds[start], bounds[end] - bounds[start]));
    out.push_back(Token{*id, std::move(value), bounds[start], bounds[end]});
    start = end;
  }
}

}  // namespace

std::unique_ptr<Model> make_wordpiece(const nlohmann::json& j, const JsonContext& ctx) {
  return std::make_unique<WordPiece>(j, ctx);
}

}  // namespace prefopt::data::hf::model_impl
