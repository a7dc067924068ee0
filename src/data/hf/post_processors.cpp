// The post-processors of tokenizer.json for single sequences: the special tokens a template puts around the
// sequence, and ByteLevel / Roberta's trimming of the spaces a byte-level token carries out of its offsets.
// Never touches the model's tokens themselves, and never adds anything when add_special_tokens is false.
#include "post_processors.h"

#include "utf8.h"

namespace prefopt::data::hf {
namespace {

struct SpecialPiece {
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
};

void add_special(TokenSequence& seq, const SpecialPiece& piece) {
  for (std::size_t i = 0; i < piece.ids.size(); ++i) {
    seq.ids.push_back(piece.ids[i]);
    seq.tokens.push_back(piece.tokens[i]);
    seq.offsets.emplace_back(0, 0);
  }
}

// Byte-level tokens carry the spaces of the text as 'Ġ' (and other whitespace): trimming keeps them out of the
// token's offsets, as Hugging Face's process_offsets does.
void trim_offsets(TokenSequence& seq, bool add_prefix_space) {
  const auto is_space_char = [&](char32_t cp) {
    return cp == 0x120 || cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
  };
  // Offsets are bytes of the input: a 'Ġ' stands for one byte (a space), any other whitespace character for its
  // own UTF-8 bytes (an added token's text is not byte-mapped).
  const auto input_bytes = [](char32_t cp) -> std::size_t {
    return cp == 0x120 ? 1 : cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  };
  for (std::size_t t = 0; t < seq.tokens.size(); ++t) {
    const std::string& token = seq.tokens[t];
    std::vector<char32_t> chars;
    for (std::size_t i = 0, n = 0; i < token.size(); i += n) chars.push_back(utf8::decode(token, i, &n));
    std::size_t leading = 0, trailing = 0, leading_bytes = 0, trailing_bytes = 0;
    while (leading < chars.size() && is_space_char(chars[leading])) leading_bytes += input_bytes(chars[leading++]);
    while (trailing < chars.size() && is_space_char(chars[chars.size() - 1 - trailing])) {
      trailing_bytes += input_bytes(chars[chars.size() - 1 - trailing++]);
    }
    auto& [begin, end] = seq.offsets[t];
    if (leading > 0) {
      // The one space add_prefix_space put before the first word is not in the text: nothing to trim.
      const bool is_first = t == 0 || begin == 0;
      if (!(is_first && add_prefix_space && leading == 1)) begin = std::min(begin + leading_bytes, end);
    }
    if (trailing > 0 && end >= trailing_bytes) end = std::max(end - trailing_bytes, begin);
  }
}

bool bool_field(const nlohmann::json& j, const char* key, bool fallback, const JsonContext& ctx) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) ctx.at(key).fail("expected a boolean, got " + std::string(j[key].type_name()));
  return j[key].get<bool>();
}

// ["[SEP]", 102]
SpecialPiece token_and_id(const nlohmann::json& j, const char* key, const JsonContext& ctx) {
  const JsonContext at = ctx.at(key);
  if (!j.contains(key)) at.fail("missing");
  const nlohmann::json& v = j[key];
  if (!v.is_array() || v.size() != 2 || !v[0].is_string() || !v[1].is_number_unsigned()) {
    at.fail("expected [token, id], got " + v.dump());
  }
  return {{static_cast<int32_t>(v[1].get<uint64_t>())}, {v[0].get<std::string>()}};
}

class Template final : public PostProcessor {
 public:
  Template(const nlohmann::json& j, const JsonContext& ctx) {
    std::unordered_map<std::string, SpecialPiece> specials;
    const JsonContext sctx = ctx.at("special_tokens");
    if (j.contains("special_tokens")) {
      const nlohmann::json& s = j["special_tokens"];
      if (!s.is_object()) sctx.fail("expected an object, got " + std::string(s.type_name()));
      for (auto it = s.begin(); it != s.end(); ++it) {
        const JsonContext at = sctx.at(it.key());
        const nlohmann::json& v = it.value();
        if (!v.is_object() || !v.contains("ids") || !v["ids"].is_array() || !v.contains("tokens") ||
            !v["tokens"].is_array() || v["ids"].size() != v["tokens"].size()) {
          at.fail("expected {\"id\", \"ids\": [...], \"tokens\": [...]} with as many ids as tokens");
        }
        SpecialPiece piece;
        for (std::size_t i = 0; i < v["ids"].size(); ++i) {
          if (!v["ids"][i].is_number_unsigned()) at.at("ids").at(i).fail("expected a non-negative integer");
          if (!v["tokens"][i].is_string()) at.at("tokens").at(i).fail("expected a string");
          piece.ids.push_back(static_cast<int32_t>(v["ids"][i].get<uint64_t>()));
          piece.tokens.push_back(v["tokens"][i].get<std::string>());
        }
        specials.emplace(it.key(), std::move(piece));
      }
    }
    const JsonContext single = ctx.at("single");
    if (!j.contains("single") || !j["single"].is_array()) single.fail("expected a list of template pieces");
    for (std::size_t i = 0; i < j["single"].size(); ++i) {
      const nlohmann::json& piece = j["single"][i];
      const JsonContext at = single.at(i);
      if (piece.is_object() && piece.contains("Sequence")) {
        items_.push_back({true, {}});
      } else if (piece.is_object() && piece.contains("SpecialToken")) {
        const nlohmann::json& st = piece["SpecialToken"];
        if (!st.is_object() || !st.contains("id") || !st["id"].is_string()) {
          at.at("SpecialToken").at("id").fail("expected a string");
        }
        const std::string name = st["id"].get<std::string>();
        auto found = specials.find(name);
        if (found == specials.end()) {
          at.at("SpecialToken").at("id").fail("\"" + name + "\" is not in the template's special_tokens");
        }
        items_.push_back({false, found->second});
      } else {
        at.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}, got " + piece.dump());
      }
    }
  }
  void process(TokenSequence& seq, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    TokenSequence out;
    for (const auto& item : items_) {
      if (item.first) {
        out.ids.insert(out.ids.end(), seq.ids.begin(), seq.ids.end());
        out.tokens.insert(out.tokens.end(), seq.tokens.begin(), seq.tokens.end());
        out.offsets.insert(out.offsets.end(), seq.offsets.begin(), seq.offsets.end());
      } else {
        add_special(out, item.second);
      }
    }
    seq = std::move(out);
  }

 private:
  std::vector<std::pair<bool, SpecialPiece>> items_;  // (is the sequence, else this special piece)
};

// BERT's [CLS] A [SEP] and RoBERTa's <s> A </s> (which also trims byte-level offsets).
class ClsSep final : public PostProcessor {
 public:
  ClsSep(const nlohmann::json& j, const JsonContext& ctx, bool roberta)
      : cls_(token_and_id(j, "cls", ctx)), sep_(token_and_id(j, "sep", ctx)), roberta_(roberta) {
    if (roberta) {
      trim_ = bool_field(j, "trim_offsets", true, ctx);
      add_prefix_space_ = bool_field(j, "add_prefix_space", true, ctx);
    }
  }
  void process(TokenSequence& seq, bool add_special_tokens) const override {
    if (roberta_ && trim_) trim_offsets(seq, add_prefix_space_);
    if (!add_special_tokens) return;
    TokenSequence out;
    add_special(out, cls_);
    out.ids.insert(out.ids.end(), seq.ids.begin(), seq.ids.end());
    out.tokens.insert(out.tokens.end(), seq.tokens.begin(), seq.tokens.end());
    out.offsets.insert(out.offsets.end(), seq.offsets.begin(), seq.offsets.end());
    add_special(out, sep_);
    seq = std::move(out);
  }

 private:
  SpecialPiece cls_, sep_;
  bool roberta_;
  bool trim_ = false, add_prefix_space_ = false;
};

class ByteLevelTrim final : public PostProcessor {
 public:
  ByteLevelTrim(const nlohmann::json& j, const JsonContext& ctx)
      : trim_(bool_field(j, "trim_offsets", true, ctx)), add_prefix_space_(bool_field(j, "add_prefix_space", true, ctx)) {}
  void process(TokenSequence& seq, bool) const override {
    if (trim_) trim_offsets(seq, add_prefix_space_);
  }

 private:
  bool trim_, add_prefix_space_;
};

class SequenceOf final : public PostProcessor {
 public:
  explicit SequenceOf(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void process(TokenSequence& seq, bool add_special_tokens) const override {
    for (const auto& p : parts_) p->process(seq, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const JsonContext& ctx) {
  if (j.is_null()) return nullptr;
  if (!j.is_object()) ctx.fail("expected an object, got " + std::string(j.type_name()));
  if (!j.contains("type") || !j["type"].is_string()) ctx.at("type").fail("missing or not a string");
  const std::string type = j["type"].get<std::string>();
  if (type == "TemplateProcessing") return std::make_unique<Template>(j, ctx);
  if (type == "BertProcessing") return std::make_unique<ClsSep>(j, ctx, false);
  if (type == "RobertaProcessing") return std::make_unique<ClsSep>(j, ctx, true);
  if (type == "ByteLevel") return std::make_unique<ByteLevelTrim>(j, ctx);
  if (type == "Sequence") {
    const JsonContext at = ctx.at("processors");
    if (!j.contains("processors") || !j["processors"].is_array()) at.fail("expected a list of post-processors");
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (std::size_t i = 0; i < j["processors"].size(); ++i) {
      auto part = make_post_processor(j["processors"][i], at.at(i));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceOf>(std::move(parts));
  }
  ctx.at("type").fail("unknown post-processor type \"" + type +
                      "\"; expected TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel or Sequence");
}

}  // namespace prefopt::data::hf
