// Tests of the tokenizer.json models (BPE, WordPiece, Unigram) on small hand-made vocabularies, and of every error
// make_model reports. Every expected token list below (id:value:begin-end) was produced by the Rust library
// through its Python bindings (tokenizers 0.23.3, Tokenizer.model.tokenize), odd cases included. The comparison
// with the Rust library on generated multilingual text is a separate golden check.
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "data/hf/components.h"

namespace {

using prefopt::data::hf::FormatError;
using prefopt::data::hf::JsonContext;
using prefopt::data::hf::make_model;
using prefopt::data::hf::Model;
using prefopt::data::hf::Token;

std::unique_ptr<Model> load(const std::string& model_json) {
  return make_model(nlohmann::json::parse(model_json), JsonContext{"tokenizer.json"}.at("model"));
}

// "id:value:begin-end" per token, space-separated, so a failure shows the whole split.
std::string tokens(const Model& model, std::string_view word) {
  std::vector<Token> out;
  model.tokenize(word, out);
  std::string s;
  for (const Token& t : out) {
    if (!s.empty()) s += ' ';
    s += std::to_string(t.id) + ":" + t.value + ":" + std::to_string(t.begin) + "-" + std::to_string(t.end);
  }
  return s;
}

template <class F>
void expect_format_error(F&& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "expected a FormatError containing: " << fragment;
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(fragment), std::string::npos) << "message: " << message << "\nexpected: " << fragment;
  }
}

void expect_load_error(const std::string& model_json, const std::string& fragment) {
  expect_format_error([&] { load(model_json); }, fragment);
}

// ------------------------------------------------------------------------------------------------------- BPE

const char* kAbc = R"("vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5})";

TEST(HfModels, BpeAppliesMergesByRank) {
  auto m = load(std::string(R"({"type": "BPE", )") + kAbc + R"(, "merges": [["b", "c"], ["a", "b"], ["a", "bc"]]})");
  EXPECT_EQ(tokens(*m, "abc"), "5:abc:0-3");
  EXPECT_EQ(tokens(*m, "abcab"), "5:abc:0-3 3:ab:3-5");
  EXPECT_EQ(tokens(*m, "cab"), "2:c:0-1 3:ab:1-3");
  EXPECT_EQ(tokens(*m, "abc"), "5:abc:0-3");  // again, now from the cache
}

TEST(HfModels, BpeReadsLegacyMergeStringsAndSkipsTheVersionLine) {
  auto m = load(std::string(R"({"type": "BPE", )") + kAbc + R"(, "merges": ["a b", "b c", "ab c", "#version: 0.2"]})");
  EXPECT_EQ(tokens(*m, "abc"), "5:abc:0-3");
  EXPECT_EQ(tokens(*m, "cab"), "2:c:0-1 3:ab:1-3");
}

TEST(HfModels, BpeDropsUnknownCharactersWithoutUnkTokenAndOffsetsFollowTheKeptOnes) {
  // Rust's offsets add up the kept symbols' lengths, so "b" reads 1-2 although it sits at 2-3.
  auto m = load(R"({"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []})");
  EXPECT_EQ(tokens(*m, "axb"), "0:a:0-1 1:b:1-2");
  EXPECT_EQ(tokens(*m, "xx"), "");
}

TEST(HfModels, BpeUnknownTokenPerCharacterOrFused) {
  const std::string vocab = R"("vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3}, "merges": [["a", "b"]])";
  auto plain = load(R"({"type": "BPE", "unk_token": "<unk>", )" + vocab + "}");
  EXPECT_EQ(tokens(*plain, "axyb"), "1:a:0-1 0:<unk>:1-2 0:<unk>:2-3 2:b:3-4");
  EXPECT_EQ(tokens(*plain, "éab"), "0:<unk>:0-2 3:ab:2-4");
  auto fused = load(R"({"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, )" + vocab + "}");
  EXPECT_EQ(tokens(*fused, "axyb"), "1:a:0-1 0:<unk>:1-3 2:b:3-4");
  EXPECT_EQ(tokens(*fused, "xéab"), "0:<unk>:0-3 3:ab:3-5");
}

TEST(HfModels, BpeUnkTokenMissingFromVocabularyFailsOnlyWhenNeeded) {
  auto m = load(R"({"type": "BPE", "unk_token": "<unk>", "vocab": {"a": 1, "b": 2}, "merges": []})");
  EXPECT_EQ(tokens(*m, "ab"), "1:a:0-1 2:b:1-2");
  expect_format_error([&] { tokens(*m, "ax"); }, "$.model.unk_token: unk token \"<unk>\" is not in the vocabulary");
}

TEST(HfModels, BpeContinuingSubwordPrefixAndEndOfWordSuffix) {
  auto m = load(R"({"type": "BPE", "continuing_subword_prefix": "##", "end_of_word_suffix": "</w>",
    "vocab": {"a": 0, "##b": 1, "##c</w>": 2, "ab": 3, "abc</w>": 4, "c</w>": 5, "##b</w>": 6},
    "merges": [["a", "##b"], ["ab", "##c</w>"]]})");
  EXPECT_EQ(tokens(*m, "abc"), "4:abc</w>:0-3");
  EXPECT_EQ(tokens(*m, "c"), "5:c</w>:0-1");
  EXPECT_EQ(tokens(*m, "ab"), "0:a:0-1 6:##b</w>:1-2");
  EXPECT_EQ(tokens(*m, "abb"), "3:ab:0-2 6:##b</w>:2-3");
}

TEST(HfModels, BpeByteFallback) {
  auto m = load(R"({"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "merges": [],
    "vocab": {"<unk>": 0, "a": 1, "<0xC3>": 2, "<0xA9>": 3, "<0xE2>": 4, "<0x82>": 5}})");
  EXPECT_EQ(tokens(*m, "aé"), "1:a:0-1 2:<0xC3>:1-2 3:<0xA9>:2-3");
  // "€" is E2 82 AC and <0xAC> is missing: the unknown token, for the whole character.
  EXPECT_EQ(tokens(*m, "a€"), "1:a:0-1 0:<unk>:1-4");
  // Rust does not add a pending unknown token before byte tokens, so it lands after them, offsets and all.
  EXPECT_EQ(tokens(*m, "é€éa"), "2:<0xC3>:0-1 3:<0xA9>:1-2 2:<0xC3>:2-3 3:<0xA9>:3-4 0:<unk>:4-7 1:a:7-8");
}

TEST(HfModels, BpeByteFallbackSpellsOutThePrefixToo) {
  // Rust looks up the bytes of "##é", each one byte long, so the offsets run past the 3-byte word.
  auto m = load(R"({"type": "BPE", "unk_token": "<unk>", "continuing_subword_prefix": "##", "byte_fallback": true,
    "vocab": {"<unk>": 0, "a": 1, "b": 2, "##b": 3, "<0x23>": 4, "<0xC3>": 5, "<0xA9>": 6}, "merges": []})");
  EXPECT_EQ(tokens(*m, "aé"), "1:a:0-1 4:<0x23>:1-2 4:<0x23>:2-3 5:<0xC3>:3-4 6:<0xA9>:4-5");
  EXPECT_EQ(tokens(*m, "ab"), "1:a:0-1 3:##b:1-2");
}

TEST(HfModels, BpeIgnoreMergesKeepsVocabularyWordsWhole) {
  const std::string rest = R"("vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}, "merges": [["a", "b"]]})";
  auto ignoring = load(R"({"type": "BPE", "ignore_merges": true, )" + rest);
  EXPECT_EQ(tokens(*ignoring, "abc"), "4:abc:0-3");
  EXPECT_EQ(tokens(*ignoring, "abcc"), "3:ab:0-2 2:c:2-3 2:c:3-4");
  auto merging = load(R"({"type": "BPE", )" + rest);
  EXPECT_EQ(tokens(*merging, "abc"), "3:ab:0-2 2:c:2-3");
  // The whole-word check comes before byte fallback.
  auto bytes = load(R"({"type": "BPE", "ignore_merges": true, "byte_fallback": true,
    "vocab": {"<0x61>": 0, "b": 1, "ab": 2}, "merges": []})");
  EXPECT_EQ(tokens(*bytes, "ab"), "2:ab:0-2");
  EXPECT_EQ(tokens(*bytes, "abb"), "0:<0x61>:0-1 1:b:1-2 1:b:2-3");
}

TEST(HfModels, BpeVocabularyLookupsAndHoles) {
  auto m = load(R"({"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": [], "dropout": 0})");
  EXPECT_EQ(tokens(*m, "ab"), "0:a:0-1 2:b:1-2");
  EXPECT_EQ(m->vocab_size(), 3u);
  EXPECT_EQ(m->token_to_id("b"), 2);
  EXPECT_FALSE(m->token_to_id("c").has_value());
  ASSERT_NE(m->id_to_token(2), nullptr);
  EXPECT_EQ(*m->id_to_token(2), "b");
  EXPECT_EQ(m->id_to_token(1), nullptr);
  EXPECT_EQ(m->id_to_token(3), nullptr);
  EXPECT_EQ(m->id_to_token(-1), nullptr);
}

TEST(HfModels, BpeCacheIsSafeAcrossThreads) {
  auto m = load(std::string(R"({"type": "BPE", )") + kAbc + R"(, "merges": [["b", "c"], ["a", "b"], ["a", "bc"]]})");
  // Far more distinct words than the cache holds, so shards fill up and are emptied while other threads read.
  std::vector<std::string> words;
  for (int i = 0; i < 30000; ++i) {
    std::string w;
    for (int k = i; k > 0; k /= 3) w += static_cast<char>('a' + k % 3);
    words.push_back(w.empty() ? "a" : w);
  }
  std::vector<std::string> expected;
  for (const std::string& w : words) expected.push_back(tokens(*m, w));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int pass = 0; pass < 2; ++pass)
        for (std::size_t i = t; i < words.size(); i += 3) mismatches[t] += tokens(*m, words[i]) != expected[i];
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(HfModels, BpeLoadErrors) {
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 0}})", "$.model: missing field \"merges\"");
  expect_load_error(R"({"type": "BPE", "merges": []})", "$.model: missing field \"vocab\"");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a c"]})",
                    "$.model.merges[1]: merge \"a c\": token \"c\" is not in the vocabulary");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"], ["b", "a"]]})",
                    "$.model.merges[1]: merge \"b a\": the merged token \"ba\" is not in the vocabulary");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b c"]})",
                    "$.model.merges[0]: merge \"a b c\" is not two tokens separated by one space");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"], "a b"]})",
                    "$.model.merges[1]: expected a pair of token strings");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", ["a", "b"]]})",
                    "$.model.merges[1]: expected a string \"left right\"");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 0}, "merges": {}})", "$.model.merges: expected an array");
  expect_load_error(R"({"type": "BPE", "continuing_subword_prefix": "##", "vocab": {"a": 0, "b": 1, "ab": 2},
    "merges": [["a", "b"]]})", "token \"b\" is shorter than continuing_subword_prefix");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": -1}, "merges": []})",
                    "$.model.vocab.a: expected a non-negative integer id");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 1.5}, "merges": []})",
                    "$.model.vocab.a: expected a non-negative integer id");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 4294967296}, "merges": []})", "$.model.vocab.a: id too large");
  expect_load_error(R"({"type": "BPE", "vocab": {"a": 0, "b": 1000000}, "merges": []})",
                    "$.model.vocab: ids are too sparse: the largest is 1000000 for 2 tokens");
  expect_load_error(R"({"type": "BPE", "vocab": [], "merges": []})", "$.model.vocab: expected an object");
  expect_load_error(R"({"type": "BPE", "vocab": {}, "merges": [], "dropout": 0.1})",
                    "$.model.dropout: dropout 0.1 is not supported: it makes encoding random");
  expect_load_error(R"({"type": "BPE", "vocab": {}, "merges": [], "dropout": "x"})",
                    "$.model.dropout: expected a number");
  expect_load_error(R"({"type": "BPE", "vocab": {}, "merges": [], "unk_token": 3})",
                    "$.model.unk_token: expected a string");
  expect_load_error(R"({"type": "BPE", "vocab": {}, "merges": [], "fuse_unk": "yes"})",
                    "$.model.fuse_unk: expected a boolean");
  // null is as good as absent for BPE's options, as in Rust.
  EXPECT_NO_THROW(load(R"({"type": "BPE", "vocab": {}, "merges": [], "dropout": null, "unk_token": null,
    "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": null, "byte_fallback": null,
    "ignore_merges": null})"));
}

// ------------------------------------------------------------------------------------------------- WordPiece

const char* kWordPiece = R"({"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
  "max_input_chars_per_word": 100,
  "vocab": {"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "u": 4, "##n": 5, "é": 6, "##é": 7}})";

TEST(HfModels, WordPieceLongestMatchFirst) {
  auto m = load(kWordPiece);
  EXPECT_EQ(tokens(*m, "unaffable"), "1:un:0-2 2:##aff:2-5 3:##able:5-9");
  EXPECT_EQ(tokens(*m, "unable"), "1:un:0-2 3:##able:2-6");
  EXPECT_EQ(tokens(*m, "ééé"), "6:é:0-2 7:##é:2-4 7:##é:4-6");
}

TEST(HfModels, WordPieceWholeWordBecomesUnknown) {
  auto m = load(kWordPiece);
  EXPECT_EQ(tokens(*m, "unx"), "0:[UNK]:0-3");
  EXPECT_EQ(tokens(*m, "x"), "0:[UNK]:0-1");
}

TEST(HfModels, WordPieceMaxInputCharsCountsCharacters) {
  auto m = load(R"({"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
    "max_input_chars_per_word": 3, "vocab": {"[UNK]": 0, "é": 6, "##é": 7}})");
  EXPECT_EQ(tokens(*m, "ééé"), "6:é:0-2 7:##é:2-4 7:##é:4-6");  // 6 bytes, 3 characters
  EXPECT_EQ(tokens(*m, "éééé"), "0:[UNK]:0-8");
}

TEST(HfModels, WordPieceErrors) {
  auto m = load(R"({"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
    "max_input_chars_per_word": 100, "vocab": {"a": 0}})");
  EXPECT_EQ(tokens(*m, "a"), "0:a:0-1");
  expect_format_error([&] { tokens(*m, "b"); }, "$.model.unk_token: unk token \"[UNK]\" is not in the vocabulary");
  expect_load_error(R"({"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "vocab": {}})",
                    "$.model: missing field \"max_input_chars_per_word\"");
  expect_load_error(R"({"type": "WordPiece", "unk_token": null, "continuing_subword_prefix": "##",
    "max_input_chars_per_word": 100, "vocab": {}})", "$.model.unk_token: expected a string, got null");
  expect_load_error(R"({"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
    "max_input_chars_per_word": -1, "vocab": {}})",
                    "$.model.max_input_chars_per_word: expected a non-negative integer");
}

// --------------------------------------------------------------------------------------------------- Unigram

TEST(HfModels, UnigramBestSplitAndFusedUnknowns) {
  auto m = load(R"({"type": "Unigram", "unk_id": 0,
    "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -2.0], ["ab", -2.5]]})");
  EXPECT_EQ(tokens(*m, "ab"), "3:ab:0-2");
  EXPECT_EQ(tokens(*m, "ba"), "2:b:0-1 1:a:1-2");
  // An unknown run is one token whose value is the run itself, not "<unk>".
  EXPECT_EQ(tokens(*m, "abxyab"), "3:ab:0-2 0:xy:2-4 3:ab:4-6");
  EXPECT_EQ(tokens(*m, "éa"), "0:é:0-2 1:a:2-3");
  EXPECT_EQ(m->vocab_size(), 4u);
  EXPECT_EQ(*m->id_to_token(3), "ab");
}

TEST(HfModels, UnigramTiesGoToTheEarliestStart) {
  auto m = load(R"({"type": "Unigram", "unk_id": 0,
    "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -1.0], ["ab", -2.0], ["c", -1.0], ["bc", -2.0]]})");
  EXPECT_EQ(tokens(*m, "ab"), "3:ab:0-2");
  EXPECT_EQ(tokens(*m, "abc"), "1:a:0-1 5:bc:1-3");
}

TEST(HfModels, UnigramReadsScoresAsRustDoes) {
  // Read as Rust reads them (serde_json's default float parsing), "ab" scores exactly a + b and wins the tie;
  // correctly rounded, a + b would be one unit in the last place better and win instead.
  auto m = load(R"({"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -8.54685373598651],
    ["b", -6.191796425095394], ["ab", -14.738650161081905]]})");
  EXPECT_EQ(tokens(*m, "ab"), "3:ab:0-2");
}

TEST(HfModels, UnigramByteFallback) {
  auto m = load(R"({"type": "Unigram", "unk_id": 0, "byte_fallback": true, "vocab": [["<unk>", 0.0], ["a", -1.0],
    ["b", -2.0], ["ab", -2.5], ["<0x78>", -3.0], ["<0x79>", -3.0], ["<0xC3>", -1], ["<0xA9>", -1]]})");
  // Each byte token covers the whole unknown run, as in Rust.
  EXPECT_EQ(tokens(*m, "abxyab"), "3:ab:0-2 4:<0x78>:2-4 5:<0x79>:2-4 3:ab:4-6");
  EXPECT_EQ(tokens(*m, "aéxb"), "1:a:0-1 6:<0xC3>:1-4 7:<0xA9>:1-4 4:<0x78>:1-4 2:b:4-5");
  EXPECT_EQ(tokens(*m, "azb"), "1:a:0-1 0:z:1-2 2:b:2-3");  // no <0x7A>: the unknown token
}

TEST(HfModels, UnigramDuplicatePieces) {
  // token_to_id gives a piece's last id, id_to_token the piece at that position; a literal "<unk>" piece whose
  // id is not unk_id is an ordinary piece.
  auto m = load(R"({"type": "Unigram", "unk_id": 0,
    "vocab": [["<unk>", 0.0], ["a", -1.0], ["a", -3.0], ["<unk>", -0.5]]})");
  EXPECT_EQ(tokens(*m, "a"), "2:a:0-1");
  EXPECT_EQ(tokens(*m, "a<unk>b"), "2:a:0-1 3:<unk>:1-6 0:b:6-7");
  EXPECT_EQ(m->token_to_id("a"), 2);
  EXPECT_EQ(*m->id_to_token(1), "a");
}

TEST(HfModels, UnigramErrors) {
  auto m = load(R"({"type": "Unigram", "unk_id": null, "vocab": [["a", -1.0]]})");
  EXPECT_EQ(tokens(*m, "aa"), "0:a:0-1 0:a:1-2");
  expect_format_error([&] { tokens(*m, "ab"); }, "$.model.unk_id: unk_id is null, and the text has a character");
  expect_load_error(R"({"type": "Unigram", "unk_id": 1, "vocab": [["a", -1.0]]})",
                    "$.model.unk_id: unk_id 1 is not below the vocabulary size 1");
  expect_load_error(R"({"type": "Unigram", "unk_id": 0, "vocab": []})",
                    "$.model.unk_id: unk_id is set but the vocabulary is empty");
  expect_load_error(R"({"type": "Unigram", "vocab": [["a", -1.0], ["b"]]})",
                    "$.model.vocab[1]: expected [piece, score]");
  expect_load_error(R"({"type": "Unigram", "vocab": {"a": 0}})", "$.model.vocab: expected an array");
  expect_load_error(R"({"type": "Unigram", "vocab": [], "byte_fallback": null})",
                    "$.model.byte_fallback: expected a boolean");
  expect_load_error(R"({"type": "Unigram", "unk_id": -1, "vocab": []})",
                    "$.model.unk_id: expected a non-negative integer");
  expect_load_error(R"({"type": "Unigram"})", "$.model: missing field \"vocab\"");
}

// -------------------------------------------------------------------------------------------------- dispatch

TEST(HfModels, TypeIsInferredWhenAbsent) {
  auto bpe = load(R"({"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})");
  EXPECT_EQ(tokens(*bpe, "ab"), "2:ab:0-2");
  auto wordpiece = load(R"({"unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[UNK]": 0, "a": 1, "##b": 2}})");
  EXPECT_EQ(tokens(*wordpiece, "ab"), "1:a:0-1 2:##b:1-2");
  auto unigram = load(R"({"unk_id": 0, "vocab": [["<unk>", 0.0], ["ab", -1.0]]})");
  EXPECT_EQ(tokens(*unigram, "ab"), "1:ab:0-2");
}

TEST(HfModels, DispatchErrors) {
  expect_load_error(R"({"type": "Foo", "vocab": {}})",
                    "$.model.type: unknown model type \"Foo\"; expected BPE, WordPiece or Unigram");
  expect_load_error(R"({"type": "WordLevel", "vocab": {}, "unk_token": "[UNK]"})",
                    "model type \"WordLevel\" is not supported");
  expect_load_error(R"({"type": 3})", "$.model.type: expected a string");
  expect_load_error(R"([])", "$.model: expected a model object");
  expect_load_error(R"(null)", "$.model: expected a model object");
  expect_load_error(R"({"vocab": {"a": 0}, "unk_token": "[UNK]"})", "the fields fit WordLevel, which is not supported");
  expect_load_error(R"({"dropout": null})", "the fields fit no model");
}

}  // namespace
