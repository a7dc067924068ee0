// Tests of the byte-level tokenizer: the documented ids (bytes 0..255, pad 256, bos 257, eos 258), exact round
// trips of any byte string (UTF-8, invalid UTF-8, NUL), special-token decoding, out-of-range ids, and use through
// the Tokenizer interface by a second implementation.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <prefopt/data/tokenizer.h>
#include "support/expect_error.h"

namespace prefopt::data {
namespace {

TEST(ByteTokenizer, DocumentedIds) {
  ByteTokenizer tok;
  EXPECT_EQ(tok.vocab_size(), 259);
  EXPECT_EQ(tok.pad_id(), 256);
  EXPECT_EQ(tok.bos_id(), std::optional<int64_t>(257));
  EXPECT_EQ(tok.eos_id(), std::optional<int64_t>(258));
  EXPECT_EQ(tok.encode("hi"), (std::vector<int64_t>{104, 105}));
  EXPECT_EQ(tok.encode("h\xC3\xA9"), (std::vector<int64_t>{104, 195, 169}));  // "hé": two UTF-8 bytes
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(ByteTokenizer, RoundTripsEveryByteString) {
  ByteTokenizer tok;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::vector<std::string> texts = {"",
                                          "plain ASCII",
                                          "cr\xC3\xA8me br\xC3\xBBl\xC3\xA9\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
                                          std::string("nul\0inside", 10),
                                          "\xFF\xFE invalid \xC3",
                                          all};
  for (const auto& text : texts) {
    const auto ids = tok.encode(text);
    ASSERT_EQ(ids.size(), text.size());
    for (const auto id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 256);
    }
    EXPECT_EQ(tok.decode(ids, true), text);
    EXPECT_EQ(tok.decode(ids, false), text);
  }
}

TEST(ByteTokenizer, SpecialTokensAreSkippedOrNamed) {
  ByteTokenizer tok;
  const std::vector<int64_t> ids = {257, 104, 105, 258, 256, 256};
  EXPECT_EQ(tok.decode(ids, true), "hi");
  EXPECT_EQ(tok.decode(ids, false), "<bos>hi<eos><pad><pad>");
}

TEST(ByteTokenizer, OutOfRangeIdsAreErrors) {
  ByteTokenizer tok;
  testing::expect_error(
      [&] {
        tok.decode({104, 259}, true);
      },
      "ByteTokenizer::decode: ids[1] = 259 is outside the vocabulary [0, 259)");
  testing::expect_error([&] { tok.decode({-1}, false); },
                        "ByteTokenizer::decode: ids[0] = -1 is outside the vocabulary [0, 259)");
}

// A second tokenizer through the same interface: one id per space-separated word of a fixed vocabulary, no BOS.
class WordTokenizer final : public Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override {
    std::vector<int64_t> ids;
    size_t start = 0;
    while (start <= text.size()) {
      const size_t end = std::min(text.find(' ', start), text.size());
      const auto word = text.substr(start, end - start);
      if (!word.empty()) ids.push_back(word == "yes" ? 1 : word == "no" ? 2 : 3);
      start = end + 1;
    }
    return ids;
  }
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    std::string out;
    for (const auto id : ids) {
      if (id == 0 && skip_special_tokens) continue;
      if (!out.empty()) out += ' ';
      out += id == 0 ? "</s>" : id == 1 ? "yes" : id == 2 ? "no" : "<unk>";
    }
    return out;
  }
  int64_t vocab_size() const override { return 4; }
  std::optional<int64_t> bos_id() const override { return std::nullopt; }
  std::optional<int64_t> eos_id() const override { return 0; }
  int64_t pad_id() const override { return 0; }
};

TEST(Tokenizer, OtherImplementationsWorkThroughTheInterface) {
  std::vector<std::unique_ptr<Tokenizer>> tokenizers;
  tokenizers.push_back(std::make_unique<ByteTokenizer>());
  tokenizers.push_back(std::make_unique<WordTokenizer>());
  EXPECT_EQ(tokenizers[0]->encode("yes no").size(), 6u);
  EXPECT_EQ(tokenizers[1]->encode("yes no maybe"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(tokenizers[1]->decode({1, 2, 0}, true), "yes no");
  EXPECT_FALSE(tokenizers[1]->bos_id().has_value());
}

}  // namespace
}  // namespace prefopt::data
