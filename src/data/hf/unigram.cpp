// The Unigram model of tokenizer.json: the highest-scoring split of a word into vocabulary pieces (Viterbi over
// the pieces found by a trie), characters no piece covers scored as unknown and runs of them fused, then byte
// fallback for those runs, exactly as Hugging Face's tokenizers (Rust) does. Never samples (no alpha/nbest:
// tokenizer.json has no field for them) and never normalizes the text it is given.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "models_internal.h"
#include "utf8.h"

namespace prefopt::data::hf::model_impl {
namespace {

// Rust's tokenizers reads JSON numbers with serde_json's default (not "float_roundtrip") parser, which turns the
// decimal digits into a u64 and multiplies or divides it by a power of ten: two roundings, so about one score
// in ten comes out one unit in the last place away from the correctly rounded value nlohmann gives. Viterbi
// compares sums of scores, so the same doubles are needed to break near-ties the same way. The digits are
// recovered as the shortest representation of the parsed value, which is how Rust and Python write scores.
double serde_json_double(double parsed) {
  if (!std::isfinite(parsed) || parsed == 0.0) return parsed;
  static const std::vector<double> pow10 = [] {
    std::vector<double> p(309);
    for (int i = 0; i < 309; ++i) p[i] = std::strtod(("1e" + std::to_string(i)).c_str(), nullptr);
    return p;
  }();
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, std::fabs(parsed), std::chars_format::scientific);
  const std::string_view text(buf, static_cast<std::size_t>(r.ptr - buf));  // "d.ddde+XX"
  const std::size_t e = text.find('e');
  uint64_t significand = 0;
  int digits = 0;
  for (std::size_t i = 0; i < e; ++i) {
    if (text[i] == '.') continue;
    significand = significand * 10 + static_cast<uint64_t>(text[i] - '0');
    ++digits;
  }
  int exponent = std::atoi(std::string(text.substr(e + 1)).c_str()) - (digits - 1);
  double f = static_cast<double>(significand);
  for (;;) {
    const int magnitude = exponent < 0 ? -exponent : exponent;
    if (magnitude < 309) {
      if (exponent >= 0) {
        f *= pow10[magnitude];
        if (!std::isfinite(f)) return parsed;  // Rust refuses the file here; keep the value rather than inf
      } else {
        f /= pow10[magnitude];
      }
      break;
    }
    if (f == 0.0) break;
    if (exponent >= 0) return parsed;
    f /= 1e308;
    exponent += 308;
  }
  return parsed < 0 ? -f : f;
}

/// A byte trie over the pieces, flattened: each node's children sit together, sorted by byte.
class Trie {
 public:
  void build(const std::vector<std::pair<std::string_view, int32_t>>& sorted_pieces);

  /// Calls f(length, id) for every piece that is a prefix of `text`, shortest first.
  template <class F>
  void prefixes(std::string_view text, F&& f) const {
    if (text.empty()) return;
    int32_t node = root_children_[static_cast<unsigned char>(text[0])];
    for (std::size_t i = 1;; ++i) {
      if (node < 0) return;
      const Node& n = nodes_[node];
      if (n.id >= 0) f(i, n.id);
      if (i == text.size()) return;
      node = child(n, static_cast<unsigned char>(text[i]));
    }
  }

 private:
  struct Node {
    int32_t id = -1;  // the piece ending here, or -1
    uint32_t first = 0;
    uint32_t count = 0;
  };
  int32_t child(const Node& n, unsigned char byte) const {
    const unsigned char* begin = labels_.data() + n.first;
    const unsigned char* end = begin + n.count;
    const unsigned char* it = n.count <= 8 ? std::find(begin, end, byte) : std::lower_bound(begin, end, byte);
    return it != end && *it == byte ? targets_[n.first + (it - begin)] : -1;
  }
  int32_t root_children_[256];
  std::vector<Node> nodes_;
  std::vector<unsigned char> labels_;
  std::vector<int32_t> targets_;
};

void Trie::build(const std::vector<std::pair<std::string_view, int32_t>>& sorted_pieces) {
  // Insert in sorted order into a trie whose nodes keep their children as lists (appended in byte order because
  // the pieces are sorted), then lay the lists out one after another.
  struct Building {
    int32_t id = -1;
    std::vector<std::pair<unsigned char, int32_t>> children;
  };
  std::vector<Building> b(1);
  for (const auto& [piece, id] : sorted_pieces) {
    int32_t node = 0;
    for (char c : piece) {
      const unsigned char byte = static_cast<unsigned char>(c);
      auto& kids = b[node].children;
      if (kids.empty() || kids.back().first != byte) {
        kids.emplace_back(byte, static_cast<int32_t>(b.size()));
        b.emplace_back();
      }
      node = b[node].children.back().second;
    }
    if (!piece.empty()) b[node].id = id;  // Rust's trie never reports the empty piece
  }
  std::fill(std::begin(root_children_), std::end(root_children_), -1);
  for (const auto& [byte, target] : b[0].children) root_children_[byte] = target;
  nodes_.resize(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) {
    nodes_[i].id = b[i].id;
    nodes_[i].first = static_cast<uint32_t>(labels_.size());
    nodes_[i].count = static_cast<uint32_t>(b[i].children.size());
    for (const auto& [byte, target] : b[i].children) {
      labels_.push_back(byte);
      targets_.push_back(target);
    }
  }
}

// Scratch space reused by every call on a thread.
struct Scratch {
  std::vector<double> score;    // best score of a split of the first i bytes
  std::vector<int32_t> start;   // where the last piece of that split starts (-1: none yet)
  std::vector<int32_t> id;      // and its id
  std::vector<uint32_t> result; // cached form: (id | kByte, begin, end) per token
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

constexpr uint32_t kByte = 0x80000000u;  // the token is a byte-fallback token: its value is its vocabulary piece

class Unigram final : public Model {
 public:
  Unigram(const nlohmann::json& j, const JsonContext& ctx);

  void tokenize(std::string_view piece, std::vector<Token>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override { return token_to_id_.find(token); }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size()) return nullptr;
    return &pieces_[id];
  }
  std::size_t vocab_size() const override { return pieces_.size(); }

 private:
  void encode(std::string_view word, Scratch& s) const;
  int32_t unk_id() const {
    if (!unk_id_) unk_ctx_.fail("unk_id is null, and the text has a character no piece covers");
    return *unk_id_;
  }

  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  StringIdMap token_to_id_;  // the last id of each piece, as Rust's map keeps it
  Trie trie_;
  double unk_score_ = 0;
  std::optional<int32_t> unk_id_;
  JsonContext unk_ctx_;
  bool byte_fallback_ = false;
  int32_t byte_ids_[256];
  mutable WordCache cache_{WordCache::kModelCapacity};
};

Unigram::Unigram(const nlohmann::json& j, const JsonContext& ctx) {
  const nlohmann::json* vocab = field(j, "vocab");
  if (vocab == nullptr) ctx.fail("missing field \"vocab\"");
  const JsonContext vctx = ctx.at("vocab");
  if (!vocab->is_array()) vctx.fail("expected an array of [piece, score], got " + json_kind(*vocab));
  if (vocab->size() > static_cast<std::size_t>(INT32_MAX)) vctx.fail("too many pieces");
  double min_score = INFINITY;
  pieces_.reserve(vocab->size());
  scores_.reserve(vocab->size());
  for (std::size_t i = 0; i < vocab->size(); ++i) {
    const nlohmann::json& e = (*vocab)[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
      vctx.at(i).fail("expected [piece, score], got " + e.dump());
    pieces_.push_back(e[0].get<std::string>());
    const double score = e[1].is_number_float() ? serde_json_double(e[1].get<double>()) : e[1].get<double>();
    scores_.push_back(score);
    min_score = std::min(min_score, score);
    token_to_id_.insert(pieces_.back(), static_cast<int32_t>(i));
  }
  // The unknown score ignores the unknown piece's own score: the lowest score less 10, as in sentencepiece.
  unk_score_ = min_score - 10.0;

  unk_ctx_ = ctx.at("unk_id");
  if (std::optional<uint64_t> unk = optional_unsigned(j, "unk_id", ctx)) {
    if (pieces_.empty()) unk_ctx_.fail("unk_id is set but the vocabulary is empty");
    if (*unk >= pieces_.size())
      unk_ctx_.fail("unk_id " + std::to_string(*unk) + " is not below the vocabulary size " +
                    std::to_string(pieces_.size()));
    unk_id_ = static_cast<int32_t>(*unk);
  }
  if (const nlohmann::json* bf = field(j, "byte_fallback")) {
    // Rust reads a plain bool here: null is refused, unlike in BPE.
    if (!bf->is_boolean()) ctx.at("byte_fallback").fail("expected a boolean, got " + json_kind(*bf));
    byte_fallback_ = bf->get<bool>();
  }
  for (int b = 0; b < 256; ++b)
    byte_ids_[b] = token_to_id_.find(byte_token(static_cast<unsigned char>(b))).value_or(-1);

  std::vector<std::pair<std::string_view, int32_t>> sorted;
  sorted.reserve(token_to_id_.size());
  token_to_id_.for_each([&](std::string_view piece, int32_t id) { sorted.emplace_back(piece, id); });
  std::sort(sorted.begin(), sorted.end());
  trie_.build(sorted);
}

// Viterbi over byte positions, one character at a time. The order of candidates and the strict ">" settle ties
// the way Rust does: the split whose last piece starts earliest wins. A character with no one-character piece
// also gets the unknown candidate, even when longer pieces start there. A position nothing reaches keeps score
// 0, as in Rust (it only happens when unk_id is null, and then the word fails anyway).
void Unigram::encode(std::string_view word, Scratch& s) const {
  const std::size_t n = word.size();
  s.score.assign(n + 1, 0.0);
  s.start.assign(n + 1, -1);
  s.id.assign(n + 1, -1);
  for (std::size_t at = 0; at < n;) {
    const std::size_t char_len = std::min(utf8::char_length(static_cast<unsigned char>(word[at])), n - at);
    const double here = s.score[at];
    bool single = false;
    trie_.prefixes(word.substr(at), [&](std::size_t len, int32_t id) {
      const double candidate = scores_[id] + here;
      const std::size_t to = at + len;
      if (s.start[to] < 0 || candidate > s.score[to]) {
        s.score[to] = candidate;
        s.start[to] = static_cast<int32_t>(at);
        s.id[to] = id;
      }
      single = single || len == char_len;
    });
    if (!single) {
      const std::size_t to = at + char_len;
      const double candidate = unk_score_ + here;
      if (s.start[to] < 0 || candidate > s.score[to]) {
        s.score[to] = candidate;
        s.start[to] = static_cast<int32_t>(at);
        s.id[to] = unk_id();
      }
    }
    at += char_len;
  }

  // Walk back from the end; a run of unknown nodes (any node whose id is unk_id, a literal "<unk>" piece
  // included) becomes one segment, looked up again as a whole like Rust does.
  std::vector<uint32_t>& r = s.result;
  r.clear();
  // Built backwards, end before begin before id, and reversed at the end.
  auto push = [&r](std::size_t begin, std::size_t end, uint32_t tagged) {
    r.push_back(static_cast<uint32_t>(end));
    r.push_back(static_cast<uint32_t>(begin));
    r.push_back(tagged);
  };
  for (std::size_t end = n; end > 0;) {
    std::size_t begin = static_cast<std::size_t>(s.start[end]);
    const int32_t id = s.id[end];
    const bool unknown = unk_id_ && id == *unk_id_;
    if (unknown)
      while (begin > 0 && s.id[begin] == id) begin = static_cast<std::size_t>(s.start[begin]);
    if (!unknown) {
      push(begin, end, static_cast<uint32_t>(id));
    } else if (std::optional<int32_t> whole = token_to_id_.find(word.substr(begin, end - begin))) {
      push(begin, end, static_cast<uint32_t>(*whole));
    } else {
      bool bytes = byte_fallback_;
      for (std::size_t k = begin; bytes && k < end; ++k) bytes = byte_ids_[static_cast<unsigned char>(word[k])] >= 0;
      if (bytes) {
        // Every byte token of the run covers the whole run, as in Rust.
        for (std::size_t k = end; k-- > begin;)
          push(begin, end, static_cast<uint32_t>(byte_ids_[static_cast<unsigned char>(word[k])]) | kByte);
      } else {
        push(begin, end, static_cast<uint32_t>(id));
      }
    }
    end = begin;
  }
  std::reverse(r.begin(), r.end());
}

void Unigram::tokenize(std::string_view piece, std::vector<Token>& out) const {
  if (piece.empty()) return;
  Scratch& s = scratch();
  const uint64_t hash = hash_bytes(piece);
  if (!cache_.lookup(piece, hash, s.result)) {
    encode(piece, s);
    cache_.insert(piece, hash, s.result.data(), s.result.size());
  }
  for (std::size_t k = 0; k < s.result.size(); k += 3) {
    const uint32_t tagged = s.result[k];
    const uint32_t begin = s.result[k + 1];
    const uint32_t end = s.result[k + 2];
    const int32_t id = static_cast<int32_t>(tagged & ~kByte);
    // A byte token's value is its vocabulary piece; any other token's is the text it covers (for a vocabulary
    // piece the same string; for an unknown run, the run itself, as Rust gives it).
    if (tagged & kByte)
      out.push_back(Token{id, pieces_[id], begin, end});
    else
      out.push_back(Token{id, std::string(piece.substr(begin, end - begin)), begin, end});
  }
}

}  // namespace

std::unique_ptr<Model> make_unigram(const nlohmann::json& j, const JsonContext& ctx) {
  return std::make_unique<Unigram>(j, ctx);
}

}  // namespace prefopt::data::hf::model_impl
