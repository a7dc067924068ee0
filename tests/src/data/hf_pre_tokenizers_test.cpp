// Tests of the tokenizer.json pre-tokenizers (make_pre_tokenizer): the pieces and byte offsets of every type and
// split behaviour, segment_is_first, the Oniguruma pattern semantics kept under PCRE2, and the error messages with
// their JSON paths. Every expected split was produced by the Python tokenizers library 0.23.3 (pre_tokenize_str,
// its character offsets converted to bytes; segment_is_first = false by encoding after a special added token), not
// written by hand. Never reads a file: configurations are inline JSON.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "data/hf/components.h"

namespace prefopt::data::hf {
namespace {

using nlohmann::json;
using Pieces = std::vector<std::tuple<std::string, uint32_t, uint32_t>>;

const JsonContext kCtx{"tokenizer.json", "$.pre_tokenizer"};

// Runs `config` on `input` twice, with origins and without: the texts must agree, the untracked run must stay
// untracked, and the tracked one gives each piece's [begin, end) in the input.
Pieces run(const std::string& config, const std::string& input, bool segment_is_first = true) {
  const auto pre_tokenizer = make_pre_tokenizer(json::parse(config), kCtx);
  std::vector<Piece> tracked(1), plain(1);
  tracked[0].text = plain[0].text = input;
  tracked[0].origin.resize(input.size() + 1);
  std::iota(tracked[0].origin.begin(), tracked[0].origin.end(), 0u);
  pre_tokenizer->pre_tokenize(tracked, segment_is_first);
  pre_tokenizer->pre_tokenize(plain, segment_is_first);
  Pieces out;
  EXPECT_EQ(tracked.size(), plain.size());
  for (std::size_t i = 0; i < tracked.size(); ++i) {
    EXPECT_EQ(tracked[i].origin.size(), tracked[i].text.size() + 1);
    if (i < plain.size()) {
      EXPECT_EQ(plain[i].text, tracked[i].text);
      EXPECT_TRUE(plain[i].origin.empty());
    }
    out.emplace_back(tracked[i].text, tracked[i].origin.front(), tracked[i].origin.back());
  }
  return out;
}

// Whether building `config` fails with a message containing `expected`.
testing::AssertionResult fails_with(const std::string& config, const std::string& expected) {
  try {
    make_pre_tokenizer(json::parse(config), kCtx);
  } catch (const FormatError& e) {
    const std::string message = e.what();
    if (message.find(expected) != std::string::npos) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "message: " << message;
  }
  return testing::AssertionFailure() << "no error";
}

// Llama 3's pre-tokenizer, as its tokenizer.json has it.
const char* const kLlama3 = R"json({"type": "Sequence", "pretokenizers": [
  {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|)json"
                            R"json(\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
   "behavior": "Isolated", "invert": false},
  {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})json";

TEST(HfPreTokenizers, NullIsNoPreTokenizer) { EXPECT_EQ(make_pre_tokenizer(json(nullptr), kCtx), nullptr); }

TEST(HfPreTokenizers, ByteLevelSplitsWithGpt2RegexAndMapsBytes) {
  EXPECT_EQ(run(R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true})",
                "Hello world! I'm 2024ok\n\n  é😀"),
            (Pieces{{"Hello", 0, 5}, {"Ġworld", 5, 11}, {"!", 11, 12}, {"ĠI", 12, 14}, {"'m", 14, 16},
                    {"Ġ2024", 16, 21}, {"ok", 21, 23}, {"ĊĊĠ", 23, 26}, {"ĠÃ©", 26, 29}, {"ðŁĺĢ", 29, 33}}));
}

TEST(HfPreTokenizers, ByteLevelPrefixSpaceCoversTheFirstCharacterWhenAlone) {
  // The prepended space, split off by the regex, reports the first character's offsets like the Rust library.
  EXPECT_EQ(run(R"({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false})", "\nhi  there"),
            (Pieces{{"Ġ", 0, 1}, {"Ċ", 0, 1}, {"hi", 1, 3}, {"Ġ", 3, 4}, {"Ġthere", 4, 10}}));
  EXPECT_EQ(run(R"({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": false})",
                "a é\tb"),
            (Pieces{{"ĠaĠÃ©ĉb", 0, 6}}));
  EXPECT_EQ(run(R"({"type": "Sequence", "pretokenizers": [
                   {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": false},
                   {"type": "Split", "pattern": {"String": "Ġ"}, "behavior": "Isolated", "invert": false}]})",
                "hello world"),
            (Pieces{{"Ġ", 0, 1}, {"hello", 0, 5}, {"Ġ", 5, 6}, {"world", 6, 11}}));
}

TEST(HfPreTokenizers, Llama3SplitThenByteLevel) {
  EXPECT_EQ(run(kLlama3, "He'LL pay 1234567 ¥ 中文!!\r\n\n  x\u0085y\u00A0\u3000z \u2028"),
            (Pieces{{"He", 0, 2}, {"'LL", 2, 5}, {"Ġpay", 5, 9}, {"Ġ", 9, 10}, {"123", 10, 13}, {"456", 13, 16},
                    {"7", 16, 17}, {"ĠÂ¥", 17, 20}, {"Ġä¸Ńæĸĩ", 20, 27}, {"!!čĊĊ", 27, 32}, {"Ġ", 32, 33},
                    {"Ġx", 33, 35}, {"Âħy", 35, 38}, {"Âł", 38, 40}, {"ãĢĢz", 40, 44}, {"ĠâĢ¨", 44, 48}}));
}

TEST(HfPreTokenizers, SplitBehaviours) {
  const auto split = [](const char* behavior, bool invert) {
    return std::string(R"({"type": "Split", "pattern": {"String": "-"}, "behavior": ")") + behavior +
           R"(", "invert": )" + (invert ? "true" : "false") + "}";
  };
  const std::string text = "the-final--countdown";
  EXPECT_EQ(run(split("Removed", false), text), (Pieces{{"the", 0, 3}, {"final", 4, 9}, {"countdown", 11, 20}}));
  EXPECT_EQ(run(split("Isolated", false), text), (Pieces{{"the", 0, 3}, {"-", 3, 4}, {"final", 4, 9}, {"-", 9, 10},
                                                         {"-", 10, 11}, {"countdown", 11, 20}}));
  EXPECT_EQ(run(split("MergedWithPrevious", false), text),
            (Pieces{{"the-", 0, 4}, {"final-", 4, 10}, {"-", 10, 11}, {"countdown", 11, 20}}));
  EXPECT_EQ(run(split("MergedWithNext", false), text),
            (Pieces{{"the", 0, 3}, {"-final", 3, 9}, {"-", 9, 10}, {"-countdown", 10, 20}}));
  EXPECT_EQ(run(split("Contiguous", false), text),
            (Pieces{{"the", 0, 3}, {"-", 3, 4}, {"final", 4, 9}, {"--", 9, 11}, {"countdown", 11, 20}}));
  EXPECT_EQ(run(split("MergedWithPrevious", true), text),
            (Pieces{{"the", 0, 3}, {"-final", 3, 9}, {"-", 9, 10}, {"-countdown", 10, 20}}));
}

TEST(HfPreTokenizers, SplitRegexFollowsOnigurumaFindIter) {
  // No empty match right where "x" ended, as Oniguruma's find_iter skips it.
  EXPECT_EQ(run(R"({"type": "Split", "pattern": {"Regex": "x*"}, "behavior": "MergedWithNext", "invert": false})",
                "abxc"),
            (Pieces{{"a", 0, 1}, {"b", 1, 2}, {"xc", 2, 4}}));
  // ^ and $ anchor at lines, \w counts ² standing alone, \h is a hex digit, {,2} is {0,2}.
  EXPECT_EQ(run(R"({"type": "Split", "pattern": {"Regex": "^\\w+|\\h+$|ba{,2}"}, "behavior": "Isolated",
                    "invert": false})",
                "x²y\n-cafe\n-baaaz"),
            (Pieces{{"x²y", 0, 4}, {"\n-", 4, 6}, {"cafe", 6, 10}, {"\n-", 10, 12}, {"baa", 12, 15}, {"az", 15, 17}}));
  // Letters of Unicode 16 (U+1C89, U+10D50), which PCRE2 10.42 does not know, are \p{L} as in Oniguruma.
  EXPECT_EQ(run(R"({"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": false})",
                "1\u1C89\U00010D50z2"),
            (Pieces{{"1", 0, 1}, {"\u1C89\U00010D50z", 1, 9}, {"2", 9, 10}}));
}

TEST(HfPreTokenizers, Metaspace) {
  EXPECT_EQ(run(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true})",
                "Hey  my friend "),
            (Pieces{{"▁Hey", 0, 3}, {"▁", 3, 4}, {"▁my", 4, 7}, {"▁friend", 7, 14}, {"▁", 14, 15}}));
  EXPECT_EQ(run(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": true})", "Hey my"),
            (Pieces{{"Hey", 0, 3}, {"▁my", 3, 6}}));
  EXPECT_EQ(run(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false})",
                "Hey my"),
            (Pieces{{"▁Hey▁my", 0, 6}}));
  // Files older than prepend_scheme: add_prefix_space true is "always", false is "never".
  EXPECT_EQ(run(R"({"type": "Metaspace", "replacement": "▁", "add_prefix_space": true})", "Hey my"),
            (Pieces{{"▁Hey", 0, 3}, {"▁my", 3, 6}}));
  EXPECT_EQ(run(R"({"type": "Metaspace", "replacement": "▁", "add_prefix_space": false})", "Hey my"),
            (Pieces{{"Hey", 0, 3}, {"▁my", 3, 6}}));
}

TEST(HfPreTokenizers, MetaspaceFirstPrependsOnlyAtTheInputStart) {
  const std::string first = R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true})";
  EXPECT_EQ(run(first, "Hey my", true), (Pieces{{"▁Hey", 0, 3}, {"▁my", 3, 6}}));
  EXPECT_EQ(run(first, "Hey my", false), (Pieces{{"Hey", 0, 3}, {"▁my", 3, 6}}));
  // After an earlier split, only a split that starts where the input does gets it.
  const std::string after_split = R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
      {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}]})";
  EXPECT_EQ(run(after_split, "hello world"), (Pieces{{"▁hello", 0, 5}, {"world", 6, 11}}));
  EXPECT_EQ(run(after_split, " hello world"), (Pieces{{"hello", 1, 6}, {"world", 7, 12}}));
}

TEST(HfPreTokenizers, CharacterClassSplitters) {
  EXPECT_EQ(run(R"({"type": "Digits", "individual_digits": false})", "a12b٣٤5"),
            (Pieces{{"a", 0, 1}, {"12", 1, 3}, {"b", 3, 4}, {"٣٤5", 4, 9}}));
  EXPECT_EQ(run(R"({"type": "Digits", "individual_digits": true})", "a12b٣"),
            (Pieces{{"a", 0, 1}, {"1", 1, 2}, {"2", 2, 3}, {"b", 3, 4}, {"٣", 4, 6}}));
  EXPECT_EQ(run(R"({"type": "Whitespace"})", "Hey, you²  e\u0301té!?"),
            (Pieces{{"Hey", 0, 3}, {",", 3, 4}, {"you", 5, 8}, {"²", 8, 10}, {"e\u0301té", 12, 18}, {"!?", 18, 20}}));
  EXPECT_EQ(run(R"({"type": "WhitespaceSplit"})", " a\u00A0b\u3000c\u200Bd "),
            (Pieces{{"a", 1, 2}, {"b", 4, 5}, {"c\u200Bd", 8, 13}}));
  EXPECT_EQ(run(R"({"type": "BertPreTokenizer"})", "Hey,you!! ¿qué? 「x」$5"),
            (Pieces{{"Hey", 0, 3}, {",", 3, 4}, {"you", 4, 7}, {"!", 7, 8}, {"!", 8, 9}, {"¿", 10, 12}, {"qué", 12, 16},
                    {"?", 16, 17}, {"「", 18, 21}, {"x", 21, 22}, {"」", 22, 25}, {"$", 25, 26}, {"5", 26, 27}}));
  EXPECT_EQ(run(R"({"type": "CharDelimiterSplit", "delimiter": "-"})", "a-b--c-"),
            (Pieces{{"a", 0, 1}, {"b", 2, 3}, {"c", 5, 6}}));
  EXPECT_EQ(run(R"({"type": "FixedLength", "length": 2})", "héllo"),
            (Pieces{{"hé", 0, 3}, {"ll", 3, 5}, {"o", 5, 6}}));
}

TEST(HfPreTokenizers, PunctuationBehaviours) {
  const auto punct = [](const char* behavior) {
    return std::string(R"({"type": "Punctuation", "behavior": ")") + behavior + "\"}";
  };
  EXPECT_EQ(run(punct("Removed"), "a,b!?c"), (Pieces{{"a", 0, 1}, {"b", 2, 3}, {"c", 5, 6}}));
  EXPECT_EQ(run(punct("Isolated"), "a,b!?c"),
            (Pieces{{"a", 0, 1}, {",", 1, 2}, {"b", 2, 3}, {"!", 3, 4}, {"?", 4, 5}, {"c", 5, 6}}));
  EXPECT_EQ(run(punct("MergedWithPrevious"), "a,b!?c"), (Pieces{{"a,", 0, 2}, {"b!", 2, 4}, {"?", 4, 5}, {"c", 5, 6}}));
  EXPECT_EQ(run(punct("MergedWithNext"), "a,b!?c"), (Pieces{{"a", 0, 1}, {",b", 1, 3}, {"!", 3, 4}, {"?c", 4, 6}}));
  EXPECT_EQ(run(punct("Contiguous"), "a,b!?c"),
            (Pieces{{"a", 0, 1}, {",", 1, 2}, {"b", 2, 3}, {"!?", 3, 5}, {"c", 5, 6}}));
  EXPECT_EQ(run(R"({"type": "Punctuation"})", "a,b"), (Pieces{{"a", 0, 1}, {",", 1, 2}, {"b", 2, 3}}));
}

TEST(HfPreTokenizers, EmptyInputGivesNoPieces) {
  EXPECT_TRUE(run(kLlama3, "").empty());
  EXPECT_TRUE(run(R"({"type": "Metaspace", "replacement": "▁"})", "").empty());
}

TEST(HfPreTokenizers, OnePreTokenizerServesSeveralThreads) {
  const auto pre_tokenizer = make_pre_tokenizer(json::parse(kLlama3), kCtx);
  const std::string text = "It's 2024: 東京 — naïve café 😀\n";
  std::vector<std::size_t> counts(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < counts.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 200; ++k) {
        std::vector<Piece> pieces{{text, {}}};
        pre_tokenizer->pre_tokenize(pieces, true);
        counts[t] += pieces.size();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (std::size_t count : counts) EXPECT_EQ(count, counts[0]);
  EXPECT_EQ(counts[0] % 200, 0u);
}

TEST(HfPreTokenizers, ErrorsNameTheJsonPath) {
  EXPECT_TRUE(fails_with(R"({"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Nope"}]})",
                         "tokenizer.json: $.pre_tokenizer.pretokenizers[1].type: unknown pre-tokenizer type \"Nope\""));
  EXPECT_TRUE(fails_with(R"({"type": "Split", "pattern": {"Regex": "(ab"}, "behavior": "Isolated", "invert": false})",
                         "tokenizer.json: $.pre_tokenizer.pattern.Regex: invalid regex \"(ab\" at offset 3"));
  EXPECT_TRUE(fails_with(R"({"type": "Split", "pattern": {"String": "-"}, "behavior": "isolated", "invert": false})",
                         "$.pre_tokenizer.behavior: unknown split behavior \"isolated\""));
  EXPECT_TRUE(fails_with(R"({"type": "Punctuation", "behavior": "Merged"})",
                         "$.pre_tokenizer.behavior: unknown split behavior \"Merged\""));
  EXPECT_TRUE(fails_with(R"({"type": "Split", "pattern": {"Glob": "-"}, "behavior": "Removed", "invert": false})",
                         "$.pre_tokenizer.pattern: unknown pattern kind \"Glob\""));
  EXPECT_TRUE(fails_with(R"({"type": "Split", "pattern": {"String": "-"}, "behavior": "Removed"})",
                         "$.pre_tokenizer: missing field \"invert\""));
  EXPECT_TRUE(fails_with(R"({"type": "ByteLevel", "add_prefix_space": true})",
                         "$.pre_tokenizer: missing field \"trim_offsets\""));
  EXPECT_TRUE(fails_with(R"({"type": "ByteLevel", "add_prefix_space": 1, "trim_offsets": true})",
                         "$.pre_tokenizer.add_prefix_space: expected a boolean"));
  EXPECT_TRUE(fails_with(R"({"type": "Metaspace", "replacement": "ab"})",
                         "$.pre_tokenizer.replacement: expected a one-character string"));
  EXPECT_TRUE(fails_with(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "First"})",
                         "$.pre_tokenizer.prepend_scheme: unknown prepend_scheme \"First\""));
  EXPECT_TRUE(fails_with(R"({"type": "Metaspace", "replacement": "▁", "add_prefix_space": false,
                           "prepend_scheme": "first"})",
                         "$.pre_tokenizer.add_prefix_space: add_prefix_space does not match declared prepend_scheme"));
  EXPECT_TRUE(fails_with(R"({"type": "FixedLength", "length": 0})", "$.pre_tokenizer.length"));
  EXPECT_TRUE(fails_with(R"({"type": "UnicodeScripts"})", "$.pre_tokenizer.type: the UnicodeScripts"));
  EXPECT_TRUE(fails_with(R"({"pretokenizers": []})", "$.pre_tokenizer: missing field \"type\""));
  EXPECT_TRUE(fails_with(R"("ByteLevel")", "$.pre_tokenizer: expected an object"));
}

}  // namespace
}  // namespace prefopt::data::hf
