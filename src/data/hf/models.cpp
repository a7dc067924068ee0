// make_model: picks the tokenizer model a tokenizer.json "model" object describes (BPE, WordPiece or Unigram) the
// way Hugging Face's tokenizers does, with or without a "type" field; plus the tables, cache and JSON readers
// the three models share. Never tokenizes text itself (bpe.cpp, wordpiece.cpp and unigram.cpp do).
#include <algorithm>
#include <limits>

#include "models_internal.h"

namespace prefopt::data::hf {

namespace model_impl {

// ---------------------------------------------------------------------------------------------- StringIdMap

void StringIdMap::insert(std::string_view key, int32_t id) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const uint64_t h = hash_bytes(key);
  for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.hash == 0) {
      s.hash = h;
      s.offset = static_cast<uint32_t>(arena_.size());
      s.length = static_cast<uint32_t>(key.size());
      s.id = id;
      arena_.append(key);
      ++count_;
      max_key_length_ = std::max(max_key_length_, key.size());
      return;
    }
    if (s.hash == h && s.length == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0) {
      s.id = id;
      return;
    }
  }
}

void StringIdMap::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(std::max<std::size_t>(16, old.size() * 2), Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.hash == 0) continue;
    std::size_t i = s.hash & mask_;
    while (slots_[i].hash != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

// ------------------------------------------------------------------------------------------------ WordCache

namespace {

struct CacheSlot {
  uint64_t hash = 0;
  uint32_t key_offset = 0;
  uint32_t key_length = 0;
  uint32_t value_offset = 0;
  uint32_t value_count = 0;
};

// One generation of a shard: an open-addressing table whose keys and values live in two arenas.
struct CacheTable {
  std::vector<CacheSlot> slots;
  std::string keys;
  std::vector<uint32_t> values;
  std::size_t count = 0;

  // The slot holding `word`, or the empty slot where it would go.
  CacheSlot& probe(std::string_view word, uint64_t hash) {
    const std::size_t mask = slots.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      CacheSlot& s = slots[i];
      if (s.hash == 0) return s;
      if (s.hash == hash && s.key_length == word.size() &&
          std::memcmp(keys.data() + s.key_offset, word.data(), word.size()) == 0)
        return s;
    }
  }
  void clear() {
    std::fill(slots.begin(), slots.end(), CacheSlot{});
    keys.clear();
    values.clear();
    count = 0;
  }
  void put(CacheSlot& s, std::string_view word, uint64_t hash, const uint32_t* v, std::size_t n) {
    s = CacheSlot{hash, static_cast<uint32_t>(keys.size()), static_cast<uint32_t>(word.size()),
                  static_cast<uint32_t>(values.size()), static_cast<uint32_t>(n)};
    keys.append(word);
    values.insert(values.end(), v, v + n);
    ++count;
  }
};

}  // namespace

// Each shard on its own cache lines, so threads working on different shards do not slow each other down.
struct alignas(64) WordCache::Shard {
  std::mutex mutex;
  CacheTable tables[2];
  int current = 0;

  // Adds a word that is in neither generation to the current one, turning generations over when it is full.
  void add(std::size_t limit, std::string_view word, uint64_t hash, const uint32_t* v, std::size_t n) {
    if (tables[current].count >= limit) {
      current ^= 1;
      tables[current].clear();
    }
    CacheTable& t = tables[current];
    t.put(t.probe(word, hash), word, hash, v, n);
  }
};

WordCache::WordCache(std::size_t capacity)
    : per_shard_(std::max<std::size_t>(1, capacity / kShards / 2)), shards_(new Shard[kShards]) {
  std::size_t table = 4;
  while (table < per_shard_ * 2) table *= 2;
  for (std::size_t i = 0; i < kShards; ++i)
    for (CacheTable& t : shards_[i].tables) t.slots.assign(table, CacheSlot{});
}

WordCache::~WordCache() = default;

bool WordCache::lookup(std::string_view word, uint64_t hash, std::vector<uint32_t>& out) const {
  if (word.size() >= kMaxWordLength) return false;
  Shard& shard = shards_[hash >> 58];
  std::lock_guard<std::mutex> lock(shard.mutex);
  CacheTable& now = shard.tables[shard.current];
  if (const CacheSlot& s = now.probe(word, hash); s.hash != 0) {
    out.assign(now.values.begin() + s.value_offset, now.values.begin() + s.value_offset + s.value_count);
    return true;
  }
  CacheTable& old = shard.tables[shard.current ^ 1];
  const CacheSlot& s = old.probe(word, hash);
  if (s.hash == 0) return false;
  out.assign(old.values.begin() + s.value_offset, old.values.begin() + s.value_offset + s.value_count);
  shard.add(per_shard_, word, hash, out.data(), out.size());  // may clear `old`: `out` holds the copy
  return true;
}

void WordCache::insert(std::string_view word, uint64_t hash, const uint32_t* values, std::size_t count) const {
  if (word.size() >= kMaxWordLength) return;
  Shard& shard = shards_[hash >> 58];
  std::lock_guard<std::mutex> lock(shard.mutex);
  // Another thread may have got there first.
  if (shard.tables[shard.current].probe(word, hash).hash != 0) return;
  if (shard.tables[shard.current ^ 1].probe(word, hash).hash != 0) return;
  shard.add(per_shard_, word, hash, values, count);
}

// ----------------------------------------------------------------------------------------------------- JSON

std::string json_kind(const nlohmann::json& j) {
  if (j.is_number_float()) return "a number";
  if (j.is_number()) return "an integer";
  if (j.is_array()) return "an array";
  if (j.is_object()) return "an object";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  return j.type_name();
}

const nlohmann::json* field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string required_string(const nlohmann::json& j, const char* key, const JsonContext& ctx) {
  const nlohmann::json* v = field(j, key);
  if (v == nullptr) ctx.fail(std::string("missing field \"") + key + "\"");
  if (!v->is_string()) ctx.at(key).fail("expected a string, got " + json_kind(*v));
  return v->get<std::string>();
}

std::optional<std::string> optional_string(const nlohmann::json& j, const char* key, const JsonContext& ctx) {
  const nlohmann::json* v = field(j, key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string()) ctx.at(key).fail("expected a string or null, got " + json_kind(*v));
  return v->get<std::string>();
}

bool optional_bool(const nlohmann::json& j, const char* key, bool fallback, const JsonContext& ctx) {
  const nlohmann::json* v = field(j, key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_boolean()) ctx.at(key).fail("expected a boolean or null, got " + json_kind(*v));
  return v->get<bool>();
}

std::optional<uint64_t> optional_unsigned(const nlohmann::json& j, const char* key, const JsonContext& ctx) {
  const nlohmann::json* v = field(j, key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_number_unsigned()) ctx.at(key).fail("expected a non-negative integer or null, got " + json_kind(*v));
  return v->get<uint64_t>();
}

StringIdMap read_vocab_object(const nlohmann::json& vocab, const JsonContext& ctx, std::size_t* id_bound) {
  if (!vocab.is_object()) ctx.fail("expected an object {token: id}, got " + json_kind(vocab));
  StringIdMap map;
  std::size_t bound = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const nlohmann::json& id = it.value();
    if (!id.is_number_unsigned()) ctx.at(it.key()).fail("expected a non-negative integer id, got " + json_kind(id));
    const uint64_t value = id.get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) ctx.at(it.key()).fail("id too large");
    map.insert(it.key(), static_cast<int32_t>(value));
    bound = std::max<std::size_t>(bound, value + 1);
  }
  // Ids index dense tables; Hugging Face's files number tokens from 0 with few or no holes.
  if (bound > 4 * map.size() + 65536) ctx.fail("ids are too sparse: the largest is " + std::to_string(bound - 1) +
                                                " for " + std::to_string(map.size()) + " tokens");
  *id_bound = bound;
  return map;
}

std::vector<std::string> invert_vocab(const StringIdMap& vocab, std::size_t id_bound) {
  std::vector<std::string> tokens(id_bound);
  std::vector<bool> seen(id_bound, false);
  vocab.for_each([&](std::string_view token, int32_t id) {
    if (!seen[id] || token < tokens[id]) tokens[id].assign(token);
    seen[id] = true;
  });
  return tokens;
}

}  // namespace model_impl

// -------------------------------------------------------------------------------------------------- factory

std::unique_ptr<Model> make_model(const nlohmann::json& j, const JsonContext& ctx) {
  using model_impl::field;
  if (!j.is_object()) ctx.fail("expected a model object, got " + model_impl::json_kind(j));
  if (const nlohmann::json* type = field(j, "type")) {
    if (!type->is_string()) ctx.at("type").fail("expected a string, got " + model_impl::json_kind(*type));
    const std::string name = type->get<std::string>();
    if (name == "BPE") return model_impl::make_bpe(j, ctx);
    if (name == "WordPiece") return model_impl::make_wordpiece(j, ctx);
    if (name == "Unigram") return model_impl::make_unigram(j, ctx);
    if (name == "WordLevel")
      ctx.at("type").fail("model type \"WordLevel\" is not supported; expected BPE, WordPiece or Unigram");
    ctx.at("type").fail("unknown model type \"" + name + "\"; expected BPE, WordPiece or Unigram");
  }
  // Files from before "type" existed: Hugging Face tries BPE, WordPiece, WordLevel and Unigram in turn and
  // keeps the first whose fields fit. BPE is the only one with "merges"; WordPiece needs all four of its fields
  // (WordLevel's are a subset, hence the order); Unigram's vocab is a list rather than an object. Unlike Hugging
  // Face, a file whose fields fit a model but whose content is bad gets that model's error rather than a try at
  // the next model.
  const nlohmann::json* vocab = field(j, "vocab");
  if (field(j, "merges") != nullptr) return model_impl::make_bpe(j, ctx);
  if (field(j, "unk_token") && field(j, "continuing_subword_prefix") && field(j, "max_input_chars_per_word") && vocab)
    return model_impl::make_wordpiece(j, ctx);
  if (vocab != nullptr && vocab->is_array()) return model_impl::make_unigram(j, ctx);
  if (vocab != nullptr && field(j, "unk_token"))
    ctx.fail("no \"type\", and the fields fit WordLevel, which is not supported; expected BPE, WordPiece or Unigram");
  ctx.fail("no \"type\", and the fields fit no model; expected BPE (vocab and merges), WordPiece or Unigram");
}

}  // namespace prefopt::data::hf
