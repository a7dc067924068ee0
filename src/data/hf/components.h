// The component interfaces of a Hugging Face tokenizer.json pipeline (normalizer, pre-tokenizer, model, decoder)
// and the text-with-offsets type they pass along. Private to src/data: the public face is
// include/prefopt/data/hf_tokenizer.h. Never parses a whole tokenizer.json (hf_tokenizer.cpp does) and never
// adds special tokens (the post-processor does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefopt::data::hf {

/// Malformed or unsupported tokenizer.json content: the message names the file and the JSON path.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Where a JSON value sits, for error messages such as
///     tokenizer.json: $.pre_tokenizer.pretokenizers[1].pattern.Regex: invalid regex at offset 3: missing )
struct JsonContext {
  std::string file;          // as the caller gave it
  std::string path = "$";    // JSONPath of the value

  JsonContext at(const std::string& key) const { return {file, path + "." + key}; }
  JsonContext at(std::size_t index) const { return {file, path + "[" + std::to_string(index) + "]"}; }
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(file + ": " + path + ": " + what); }
};

/// A run of text on its way through the pipeline. `origin`, when not empty, has text.size() + 1 entries:
/// origin[i] is the byte offset, in the original input, of the input byte that produced text[i] (so a
/// substring [a, b) covers the original bytes [origin[a], origin[b]) when b < text.size(), and up to
/// origin[text.size()] at the end). An empty `origin` means offsets are not tracked: every component must
/// then leave it empty, and must keep it consistent when it is not.
struct Piece {
  std::string text;
  std::vector<uint32_t> origin;
};

/// The piece made of text[a, b) (byte offsets) of `p`, with its origin sliced alike.
inline Piece slice(const Piece& p, std::size_t a, std::size_t b) {
  Piece out;
  out.text.assign(p.text, a, b - a);
  if (!p.origin.empty()) out.origin.assign(p.origin.begin() + a, p.origin.begin() + b + 1);
  return out;
}

/// Normalizers rewrite a piece in place (NFC, Lowercase, Replace, ...).
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(Piece& piece) const = 0;
};

/// Pre-tokenizers split each piece into smaller ones and may rewrite their text (ByteLevel's byte-to-unicode
/// mapping, Metaspace's replacement). `pieces` are the current splits of one input segment, in order;
/// `segment_is_first` is true when that segment starts the input (Metaspace's prepend_scheme "first").
/// Empty pieces are dropped.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<Piece>& pieces, bool segment_is_first) const = 0;
};

/// One token a model produced for a piece: its id, its string in the vocabulary and its byte range
/// [begin, end) in the piece's text.
struct Token {
  int32_t id = 0;
  std::string value;
  uint32_t begin = 0;
  uint32_t end = 0;
};

/// Models turn one pre-tokenized piece into tokens (BPE, WordPiece, Unigram). Every const method is safe to
/// call from several threads at once (a cache, if any, included).
class Model {
 public:
  virtual ~Model() = default;
  /// Appends the tokens of `piece` (non-empty) to `out`.
  virtual void tokenize(std::string_view piece, std::vector<Token>& out) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  /// nullptr when `id` is not in the model's vocabulary.
  virtual const std::string* id_to_token(int32_t id) const = 0;
  /// Number of entries of the model's vocabulary (ids are in [0, vocab_size()) but need not all be used).
  virtual std::size_t vocab_size() const = 0;
};

/// Decoders turn the tokens of an id sequence back into text pieces, which are then concatenated
/// (Hugging Face's decode_chain). `tokens` is rewritten in place.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Factories, one per component kind, from the JSON object tokenizer.json holds for it ("normalizer",
// "pre_tokenizer", "model", "decoder"); `ctx` locates that object. A JSON null gives nullptr (no component)
// except for the model. An unknown "type", a missing or mistyped field, an invalid regex, a merge naming a
// token missing from the vocabulary: FormatError through ctx.fail, naming the field's JSON path.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const JsonContext& ctx);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const JsonContext& ctx);
std::unique_ptr<Model> make_model(const nlohmann::json& j, const JsonContext& ctx);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const JsonContext& ctx);

}  // namespace prefopt::data::hf
