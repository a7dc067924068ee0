// What the tokenizer models (bpe.cpp, wordpiece.cpp, unigram.cpp) share: a string hash, an allocation-free
// string -> id table, a bounded word cache that many threads may use at once, and the JSON field readers that
// turn mistyped tokenizer.json content into FormatErrors naming the field. Never tokenizes anything itself and
// never keeps a pointer into the JSON it reads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "components.h"

namespace prefopt::data::hf::model_impl {

/// A fast 64-bit hash of a byte string (8 bytes at a time, then a murmur-style finaliser). Never 0, so tables
/// can use 0 for an empty slot.
inline uint64_t hash_bytes(std::string_view s) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0xCBF29CE484222325ull ^ (s.size() * kMul);
  const char* p = s.data();
  std::size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul;
  }
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB93F10FB7C53ull;
  h ^= h >> 33;
  return h | 1;
}

/// An immutable map from strings to ids, looked up by string_view without allocating. Keys live in one arena;
/// open addressing keeps a lookup to one or two cache lines.
class StringIdMap {
 public:
  /// Later duplicates of a key replace earlier ones (as Rust's HashMap::insert does).
  void insert(std::string_view key, int32_t id);
  std::optional<int32_t> find(std::string_view key) const {
    if (slots_.empty()) return std::nullopt;
    const uint64_t h = hash_bytes(key);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.hash == 0) return std::nullopt;
      if (s.hash == h && s.length == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
        return s.id;
    }
  }
  std::size_t size() const { return count_; }
  std::size_t max_key_length() const { return max_key_length_; }
  /// Calls f(key, id) for every entry, in no particular order.
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.hash != 0) f(std::string_view(arena_.data() + s.offset, s.length), s.id);
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t id = 0;
  };
  void grow();
  std::vector<Slot> slots_;
  std::string arena_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
  std::size_t max_key_length_ = 0;
};

/// A bounded cache from words to what a model computed for them (a run of uint32 values), safe to use from many
/// threads at once: the words are spread over mutex-guarded shards. Each shard keeps two generations: when the
/// current one is full it becomes the old one and the oldest is dropped, and a word found in the old generation
/// moves to the current one, so frequent words stay while the cache follows the text. Words of kMaxWordLength
/// bytes or more are never cached (Rust's MAX_LENGTH; long words rarely repeat).
class WordCache {
 public:
  static constexpr std::size_t kMaxWordLength = 256;
  /// What the models keep (about 5 MB when full). Rust keeps 10,000 words per thread; one cache shared by every
  /// thread needs more to miss as rarely.
  static constexpr std::size_t kModelCapacity = 65536;
  /// At most `capacity` words in all, half of them in each generation.
  explicit WordCache(std::size_t capacity);
  ~WordCache();
  WordCache(const WordCache&) = delete;
  WordCache& operator=(const WordCache&) = delete;

  /// When `word` is cached: replaces `out` with its values and returns true. `hash` is hash_bytes(word).
  bool lookup(std::string_view word, uint64_t hash, std::vector<uint32_t>& out) const;
  void insert(std::string_view word, uint64_t hash, const uint32_t* values, std::size_t count) const;

 private:
  static constexpr std::size_t kShards = 64;
  struct Shard;
  std::size_t per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

// --- JSON fields. Each reader names the field's path in its error, and treats an absent field like null. ---

/// "a string", "an integer", "null", ... for error messages.
std::string json_kind(const nlohmann::json& j);
/// j[key] or nullptr when absent.
const nlohmann::json* field(const nlohmann::json& j, const char* key);
/// A string field that must be present and a string.
std::string required_string(const nlohmann::json& j, const char* key, const JsonContext& ctx);
/// A string field that may be absent or null.
std::optional<std::string> optional_string(const nlohmann::json& j, const char* key, const JsonContext& ctx);
/// A boolean field that may be absent or null (then `fallback`).
bool optional_bool(const nlohmann::json& j, const char* key, bool fallback, const JsonContext& ctx);
/// A non-negative integer field that may be absent or null.
std::optional<uint64_t> optional_unsigned(const nlohmann::json& j, const char* key, const JsonContext& ctx);
/// {"token": id, ...} as a map (ids must fit int32 and not be far sparser than the tokens), and the largest
/// id + 1 (0 when empty) in *id_bound.
StringIdMap read_vocab_object(const nlohmann::json& vocab, const JsonContext& ctx, std::size_t* id_bound);
/// id -> token for a vocab map. Where several tokens share an id (Rust then keeps an arbitrary one), keeps the
/// one that sorts first, so the choice is at least stable.
std::vector<std::string> invert_vocab(const StringIdMap& vocab, std::size_t id_bound);

/// "<0xAB>", the byte-fallback token of `byte` (uppercase hex, as both Rust models spell it).
inline std::string_view byte_token(unsigned char byte) {
  static const std::array<std::string, 256> names = [] {
    std::array<std::string, 256> n;
    const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) n[b] = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    return n;
  }();
  return names[byte];
}

std::unique_ptr<Model> make_bpe(const nlohmann::json& j, const JsonContext& ctx);
std::unique_ptr<Model> make_wordpiece(const nlohmann::json& j, const JsonContext& ctx);
std::unique_ptr<Model> make_unigram(const nlohmann::json& j, const JsonContext& ctx);

}  // namespace prefopt::data::hf::model_impl
