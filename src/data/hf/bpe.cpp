// The BPE model of tokenizer.json: splits a word into characters (or byte tokens, or the unknown token) and
// applies the ranked merges, lowest rank first, exactly as Hugging Face's tokenizers (Rust) does, caching words.
// Never samples (dropout other than 0 is refused at load) and never normalizes or splits the text it is given.
// Offsets are Rust's too, quirks included: they add up the kept symbols' lengths (a dropped character shifts
// the rest), and with byte_fallback plus a continuing_subword_prefix or end_of_word_suffix they can run past
// the end of the word.
#include <algorithm>

#include "models_internal.h"
#include "utf8.h"

namespace prefopt::data::hf::model_impl {
namespace {

constexpr char32_t kShortChars = 0x800;  // the code points of one- and two-byte characters

/// (left id, right id) -> (rank, merged id), open addressing on the packed pair.
class MergeMap {
 public:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };

  void reserve(std::size_t n) {
    std::size_t size = 16;
    shift_ = 60;
    while (size < n * 2) {
      size *= 2;
      --shift_;
    }
    slots_.assign(size, Slot{});
    mask_ = size - 1;
  }
  /// Later duplicates replace earlier ones, as collecting into Rust's HashMap does.
  void insert(int32_t a, int32_t b, Merge m) {
    const uint64_t key = pack(a, b);
    for (std::size_t i = spread(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty || slots_[i].key == key) {
        slots_[i] = Slot{key, m};
        return;
      }
    }
  }
  const Merge* find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    for (std::size_t i = spread(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;  // ids are below 2^31, so no pair packs to this
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{0, 0};
  };
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Fibonacci hashing: the top bits of the product depend on every bit of both ids.
  std::size_t spread(uint64_t key) const { return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  int shift_ = 60;
};

// One symbol of a word being merged: a doubly linked list threaded through an array. A merged-away symbol keeps
// its slot with len 0.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  uint32_t len;  // bytes of the word it covers
};

// A symbol of a short word merged by scanning: the merge with its right neighbour, if any, is kept with it.
struct ScanSymbol {
  int32_t id;
  uint32_t len;
  uint32_t rank;  // kNoMerge when it does not merge with its right neighbour
  int32_t new_id;
};
constexpr uint32_t kNoMerge = ~0u;

// Up to this many symbols a word is merged by scanning for the best pair (quadratic, but no heap and nothing
// stale); longer words use the queue.
constexpr std::size_t kScanLimit = 48;

struct QueuedMerge {
  uint32_t rank;
  uint32_t pos;
  int32_t new_id;
};

// Lowest rank first, then leftmost: the order in which Rust's queue hands out merges.
struct LaterMerge {
  bool operator()(const QueuedMerge& a, const QueuedMerge& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

// Scratch space reused by every call on a thread, so a word costs no allocation once the buffers have grown.
struct Scratch {
  std::vector<Symbol> symbols;
  std::vector<QueuedMerge> queue;
  std::vector<ScanSymbol> scan;
  std::vector<uint32_t> result;  // id, len, id, len, ...
  std::string key;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

class Bpe final : public Model {
 public:
  Bpe(const nlohmann::json& j, const JsonContext& ctx);

  void tokenize(std::string_view piece, std::vector<Token>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.find(token); }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
    return &id_to_token_[id];
  }
  std::size_t vocab_size() const override { return id_to_token_.size(); }

 private:
  void read_merges(const nlohmann::json& merges, const JsonContext& ctx);
  void split_word(std::string_view word, Scratch& s) const;
  void merge_by_queue(Scratch& s) const;
  void merge_by_scan(Scratch& s) const;
  int32_t unk_id() const;
  void add_symbol(std::vector<Symbol>& symbols, int32_t id, uint32_t len) const {
    const int32_t n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back(Symbol{id, n - 1, -1, len});
  }

  StringIdMap vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  MergeMap merges_;
  std::optional<std::string> unk_token_;
  std::optional<int32_t> unk_id_;
  JsonContext unk_ctx_;
  std::string prefix_;  // continuing_subword_prefix, "" when null
  std::string suffix_;  // end_of_word_suffix, "" when null
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];
  // Ids of the characters below U+0800 (one or two bytes: ASCII, ByteLevel's alphabet, most alphabets) alone
  // and after the prefix, -1 when absent, so most characters cost no hashing.
  std::vector<int32_t> short_first_;
  std::vector<int32_t> short_inner_;
  mutable WordCache cache_{WordCache::kModelCapacity};
};

Bpe::Bpe(const nlohmann::json& j, const JsonContext& ctx) {
  const nlohmann::json* vocab = field(j, "vocab");
  const nlohmann::json* merges = field(j, "merges");
  if (vocab == nullptr) ctx.fail("missing field \"vocab\"");
  if (merges == nullptr) ctx.fail("missing field \"merges\"");

  if (const nlohmann::json* dropout = field(j, "dropout"); dropout != nullptr && !dropout->is_null()) {
    if (!dropout->is_number()) ctx.at("dropout").fail("expected a number or null, got " + json_kind(*dropout));
    // Rust accepts any dropout in [0, 1] and then skips merges at random; only 0 leaves encoding deterministic.
    if (dropout->get<double>() != 0.0)
      ctx.at("dropout").fail("dropout " + dropout->dump() +
                             " is not supported: it makes encoding random, and encoding must be deterministic");
  }
  unk_token_ = optional_string(j, "unk_token", ctx);
  unk_ctx_ = ctx.at("unk_token");
  prefix_ = optional_string(j, "continuing_subword_prefix", ctx).value_or("");
  suffix_ = optional_string(j, "end_of_word_suffix", ctx).value_or("");
  fuse_unk_ = optional_bool(j, "fuse_unk", false, ctx);
  byte_fallback_ = optional_bool(j, "byte_fallback", false, ctx);
  ignore_merges_ = optional_bool(j, "ignore_merges", false, ctx);

  std::size_t bound = 0;
  vocab_ = read_vocab_object(*vocab, ctx.at("vocab"), &bound);
  id_to_token_ = invert_vocab(vocab_, bound);
  has_id_.assign(bound, false);
  vocab_.for_each([&](std::string_view, int32_t id) { has_id_[id] = true; });
  // A missing unk token is only an error once a word needs it, as in Rust: a vocabulary that covers every
  // character never notices.
  if (unk_token_) unk_id_ = vocab_.find(*unk_token_);

  for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find(byte_token(static_cast<unsigned char>(b))).value_or(-1);
  short_first_.assign(kShortChars, -1);
  short_inner_.assign(kShortChars, -1);
  for (char32_t c = 0; c < kShortChars; ++c) {
    std::string ch;
    if (c < 0x80) {
      ch += static_cast<char>(c);
    } else {
      ch += static_cast<char>(0xC0 | (c >> 6));
      ch += static_cast<char>(0x80 | (c & 0x3F));
    }
    short_first_[c] = vocab_.find(ch).value_or(-1);
    short_inner_[c] = vocab_.find(prefix_ + ch).value_or(-1);
  }
  read_merges(*merges, ctx.at("merges"));
}

void Bpe::read_merges(const nlohmann::json& merges, const JsonContext& ctx) {
  if (!merges.is_array()) ctx.fail("expected an array of merges, got " + json_kind(merges));
  // Both spellings are accepted, but not mixed: Rust reads the list as all pairs or all strings.
  const bool pairs = !merges.empty() && merges[0].is_array();
  merges_.reserve(merges.size());
  uint32_t rank = 0;
  std::string a, b;
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const nlohmann::json& m = merges[i];
    const JsonContext at = ctx.at(i);
    if (pairs) {
      if (!m.is_array() || m.size() != 2 || !m[0].is_string() || !m[1].is_string())
        at.fail("expected a pair of token strings [\"left\", \"right\"] like merges[0], got " + m.dump());
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      if (!m.is_string()) at.fail("expected a string \"left right\" like merges[0], got " + m.dump());
      const std::string& line = m.get_ref<const std::string&>();
      // Rust drops merges.txt's header line wherever it appears, without giving it a rank.
      if (line.compare(0, 8, "#version") == 0) continue;
      const std::size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        at.fail("merge \"" + line + "\" is not two tokens separated by one space");
      a = line.substr(0, space);
      b = line.substr(space + 1);
    }
    const std::string shown = "merge \"" + a + " " + b + "\": ";
    const std::optional<int32_t> a_id = vocab_.find(a);
    if (!a_id) at.fail(shown + "token \"" + a + "\" is not in the vocabulary");
    const std::optional<int32_t> b_id = vocab_.find(b);
    if (!b_id) at.fail(shown + "token \"" + b + "\" is not in the vocabulary");
    // Rust drops prefix-length bytes from the right token whether or not it starts with the prefix.
    if (b.size() < prefix_.size()) at.fail(shown + "token \"" + b + "\" is shorter than continuing_subword_prefix");
    const std::string merged = a + b.substr(prefix_.size());
    const std::optional<int32_t> new_id = vocab_.find(merged);
    if (!new_id) at.fail(shown + "the merged token \"" + merged + "\" is not in the vocabulary");
    merges_.insert(*a_id, *b_id, MergeMap::Merge{rank++, *new_id});
  }
}

int32_t Bpe::unk_id() const {
  if (!unk_id_) unk_ctx_.fail("unk token \"" + *unk_token_ + "\" is not in the vocabulary, and the text needs it");
  return *unk_id_;
}

// The word's characters as vocabulary symbols, before any merge. A character missing from the vocabulary becomes
// its byte tokens (byte_fallback, when the vocabulary has all of them), else the unknown token, else nothing.
void Bpe::split_word(std::string_view word, Scratch& s) const {
  std::vector<Symbol>& symbols = s.symbols;
  symbols.clear();
  int32_t pending_unk = -1;  // the unknown token waiting to be added, and its length
  uint32_t pending_len = 0;
  const bool plain = prefix_.empty() && suffix_.empty();
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t len =
        std::min(utf8::char_length(static_cast<unsigned char>(word[i])), word.size() - i);
    const bool first = i == 0;
    const bool last = i + len == word.size();
    const std::string_view ch = word.substr(i, len);
    bool built = false;  // whether s.key holds the character with its prefix and suffix
    auto key = [&]() -> std::string_view {
      if (plain) return ch;
      if (!built) {
        s.key.clear();
        if (!first) s.key += prefix_;
        s.key += ch;
        if (last) s.key += suffix_;
        built = true;
      }
      return s.key;
    };
    const unsigned char lead = static_cast<unsigned char>(ch[0]);
    int32_t id;
    const bool short_char =
        lead < 0x80 || (len == 2 && lead >= 0xC2 && lead < 0xE0 && (static_cast<unsigned char>(ch[1]) & 0xC0) == 0x80);
    if (short_char && (!last || suffix_.empty())) {
      const char32_t c = lead < 0x80 ? lead : (char32_t(lead & 0x1F) << 6) | (static_cast<unsigned char>(ch[1]) & 0x3F);
      id = first ? short_first_[c] : short_inner_[c];
    } else {
      id = vocab_.find(key()).value_or(-1);
    }
    if (id >= 0) {
      if (pending_unk >= 0) add_symbol(symbols, pending_unk, pending_len);
      pending_unk = -1;
      add_symbol(symbols, id, static_cast<uint32_t>(len));
      i += len;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      const std::string_view bytes = key();
      for (char c : bytes) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // As in Rust: the byte tokens are those of the prefixed/suffixed string, each one byte long (so with a
        // prefix or suffix they run past the word's end), and a pending unknown token is not flushed first, so
        // it lands after them.
        for (char c : bytes) add_symbol(symbols, byte_ids_[static_cast<unsigned char>(c)], 1);
        i += len;
        continue;
      }
    }
    if (unk_token_) {
      if (pending_unk >= 0 && fuse_unk_) {
        pending_len += static_cast<uint32_t>(len);
      } else {
        if (pending_unk >= 0) add_symbol(symbols, pending_unk, pending_len);
        pending_unk = unk_id();
        pending_len = static_cast<uint32_t>(len);
      }
    }
    i += len;
  }
  if (pending_unk >= 0) add_symbol(symbols, pending_unk, pending_len);
}

// Both merge_by_* apply the merge of lowest rank among adjacent pairs, the leftmost among equals, until none
// is left: the order in which Rust's queue (ordered by rank, then position) hands out merges that still apply.
// Both leave (id, len) pairs in s.result.

// The queue holds merges that may have gone stale: one is dropped when its left symbol was merged away or the
// pair now at its place no longer merges into the token it was queued for (symbols only grow, so that means the
// pair changed).
void Bpe::merge_by_queue(Scratch& s) const {
  std::vector<Symbol>& sym = s.symbols;
  std::vector<QueuedMerge>& queue = s.queue;
  queue.clear();
  for (std::size_t i = 0; i + 1 < sym.size(); ++i)
    if (const MergeMap::Merge* m = merges_.find(sym[i].id, sym[i + 1].id))
      queue.push_back(QueuedMerge{m->rank, static_cast<uint32_t>(i), m->new_id});
  std::make_heap(queue.begin(), queue.end(), LaterMerge{});
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), LaterMerge{});
    const QueuedMerge top = queue.back();
    queue.pop_back();
    Symbol& cur = sym[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    const int32_t right_pos = cur.next;
    const Symbol right = sym[right_pos];
    const MergeMap::Merge* now = merges_.find(cur.id, right.id);
    if (now == nullptr || now->new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    sym[right_pos].len = 0;
    if (right.next >= 0) sym[right.next].prev = static_cast<int32_t>(top.pos);
    if (cur.prev >= 0) {
      if (const MergeMap::Merge* m = merges_.find(sym[cur.prev].id, cur.id)) {
        queue.push_back(QueuedMerge{m->rank, static_cast<uint32_t>(cur.prev), m->new_id});
        std::push_heap(queue.begin(), queue.end(), LaterMerge{});
      }
    }
    if (cur.next >= 0) {
      if (const MergeMap::Merge* m = merges_.find(cur.id, sym[cur.next].id)) {
        queue.push_back(QueuedMerge{m->rank, top.pos, m->new_id});
        std::push_heap(queue.begin(), queue.end(), LaterMerge{});
      }
    }
  }
  s.result.clear();
  for (const Symbol& x : sym) {
    if (x.len == 0) continue;
    s.result.push_back(static_cast<uint32_t>(x.id));
    s.result.push_back(x.len);
  }
}

void Bpe::merge_by_scan(Scratch& s) const {
  std::vector<ScanSymbol>& v = s.scan;
  v.clear();
  for (const Symbol& x : s.symbols) v.push_back(ScanSymbol{x.id, x.len, kNoMerge, 0});
  auto rate = [&](std::size_t i) {
    const MergeMap::Merge* m = i + 1 < v.size() ? merges_.find(v[i].id, v[i + 1].id) : nullptr;
    v[i].rank = m ? m->rank : kNoMerge;
    v[i].new_id = m ? m->new_id : 0;
  };
  for (std::size_t i = 0; i < v.size(); ++i) rate(i);
  for (;;) {
    std::size_t best = 0;
    uint32_t rank = kNoMerge;
    for (std::size_t i = 0; i + 1 < v.size(); ++i)
      if (v[i].rank < rank) {
        rank = v[i].rank;
        best = i;
      }
    if (rank == kNoMerge) break;
    v[best].id = v[best].new_id;
    v[best].len += v[best + 1].len;
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    rate(best);
    if (best > 0) rate(best - 1);
  }
  s.result.clear();
  for (const ScanSymbol& x : v) {
    s.result.push_back(static_cast<uint32_t>(x.id));
    s.result.push_back(x.len);
  }
}

void Bpe::tokenize(std::string_view piece, std::vector<Token>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    // Checked before anything else, byte fallback included: a word that is a token stays whole.
    if (std::optional<int32_t> id = vocab_.find(piece)) {
      out.push_back(Token{*id, std::string(piece), 0, static_cast<uint32_t>(piece.size())});
      return;
    }
  }
  Scratch& s = scratch();
  const uint64_t hash = hash_bytes(piece);
  if (!cache_.lookup(piece, hash, s.result)) {
    split_word(piece, s);
    if (s.symbols.size() <= kScanLimit)
      merge_by_scan(s);
    else
      merge_by_queue(s);
    cache_.insert(piece, hash, s.result.data(), s.result.size());
  }
  uint32_t pos = 0;
  for (std::size_t k = 0; k < s.result.size(); k += 2) {
    const int32_t id = static_cast<int32_t>(s.result[k]);
    const uint32_t end = pos + s.result[k + 1];
    out.push_back(Token{id, id_to_token_[id], pos, end});
    pos = end;
  }
}

}  // namespace

std::unique_ptr<Model> make_bpe(const nlohmann::json& j, const JsonContext& ctx) {
  return std::make_unique<Bpe>(j, ctx);
}

}  // namespace prefopt::data::hf::model_impl
