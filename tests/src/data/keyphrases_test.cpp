// Tests of the RAKE-style key-phrase extractor and SPO's graded-removal augmenter on fixed texts: the
// phrases found and their scores (computed by hand from the RAKE rules), the amounts removed per degree,
// the whitespace tidying, determinism, options, and bad options.
#include <gtest/gtest.h>

#include <prefopt/data/keyphrases.h>
#include "support/expect_error.h"

namespace prefopt::data {
namespace {

// The opening of RAKE's own example (Rose et al. 2010).
constexpr const char* kRakeText =
    "Compatibility of systems of linear constraints over the set of natural numbers. Criteria of compatibility "
    "of a system of linear Diophantine equations are considered.";

TEST(Keyphrases, RakeScoresByDegreeOverFrequency) {
  // Candidates: compatibility | systems | linear constraints | set | natural numbers || criteria |
  // compatibility | system | linear diophantine equations | considered. freq(linear) = 2, deg(linear) = 2 + 3,
  // so linear scores 2.5; diophantine and equations 3 each; constraints, natural, numbers 2; the rest 1.
  const auto phrases = extract_keyphrases(kRakeText);
  const std::vector<std::pair<std::string, double>> expected = {
      {"linear diophantine equations", 8.5}, {"linear constraints", 4.5}, {"natural numbers", 4.0},
      {"compatibility", 1.0},                {"systems", 1.0},            {"set", 1.0},
      {"criteria", 1.0},                     {"system", 1.0},             {"considered", 1.0}};
  ASSERT_EQ(phrases.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(phrases[i].phrase, expected[i].first) << i;
    EXPECT_DOUBLE_EQ(phrases[i].score, expected[i].second) << i;
  }
  // Spans index the original bytes; "compatibility" occurs twice (once capitalised).
  const std::string text = kRakeText;
  ASSERT_EQ(phrases[3].spans.size(), 2u);
  EXPECT_EQ(text.substr(phrases[3].spans[0].first, phrases[3].spans[0].second - phrases[3].spans[0].first), "Compatibility");
  EXPECT_EQ(text.substr(phrases[3].spans[1].first, phrases[3].spans[1].second - phrases[3].spans[1].first), "compatibility");
  const auto& [b, e] = phrases[0].spans[0];
  EXPECT_EQ(text.substr(b, e - b), "linear Diophantine equations");
}

TEST(Keyphrases, OptionsCapWordsAndPhrasesAndReplaceStopWords) {
  EXPECT_EQ(extract_keyphrases(kRakeText, KeyphraseOptions().max_phrases(2)).size(), 2u);
  // With at most 2 words per phrase, the 3-word phrase is dropped before scoring: linear now has degree 2.
  const auto short_phrases = extract_keyphrases(kRakeText, KeyphraseOptions().max_words(2));
  EXPECT_EQ(short_phrases[0].phrase, "linear constraints");
  EXPECT_DOUBLE_EQ(short_phrases[0].score, 4.0);
  const auto custom = extract_keyphrases("red apples and green pears", KeyphraseOptions().stop_words({"AND"}));
  ASSERT_EQ(custom.size(), 2u);
  EXPECT_EQ(custom[0].phrase, "red apples");
  EXPECT_EQ(custom[1].phrase, "green pears");
  const auto min_chars = extract_keyphrases("big ox ran far", KeyphraseOptions().min_word_chars(3));
  ASSERT_EQ(min_chars.size(), 2u);
  EXPECT_EQ(min_chars[0].phrase, "ran far");  // "ox" is too short: a break
  EXPECT_EQ(min_chars[1].phrase, "big");
}

TEST(Keyphrases, WordsKeepApostrophesHyphensAndUtf8) {
  const auto phrases = extract_keyphrases("State-of-the-art models don't fail; crème brûlée -- 'quoted'\nnew line");
  std::vector<std::string> found;
  for (const auto& p : phrases) found.push_back(p.phrase);
  const std::vector<std::string> expected = {"state-of-the-art models don't fail", "crème brûlée", "new line", "quoted"};
  EXPECT_EQ(found, expected);
}

TEST(Keyphrases, EmptyAndStopWordOnlyTextsHaveNoPhrases) {
  EXPECT_TRUE(extract_keyphrases("").empty());
  EXPECT_TRUE(extract_keyphrases("of the and, to; a.").empty());
}

TEST(GradedRemoval, RemovesGradedAmountsAndTidiesWhitespace) {
  const std::string text = "The quick brown fox jumps over the lazy dog.";
  // Phrases: "quick brown fox jumps" (16), "lazy dog" (4). K = 3: degrees remove 0, 1, 2 phrases.
  const auto variants = graded_removal(text, GradedRemovalOptions().num_degrees(3));
  ASSERT_EQ(variants.size(), 3u);
  EXPECT_EQ(variants[0].text, text);
  EXPECT_EQ(variants[0].phrases_removed, 0);
  EXPECT_EQ(variants[0].bytes_removed, 0);
  EXPECT_EQ(variants[1].text, "The over the lazy dog.");
  EXPECT_EQ(variants[1].phrases_removed, 1);
  EXPECT_EQ(variants[1].bytes_removed, 22);
  EXPECT_EQ(variants[2].text, "The over the.");
  EXPECT_EQ(variants[2].phrases_removed, 2);
  EXPECT_EQ(variants[2].bytes_removed, 31);
  for (int64_t d = 0; d < 3; ++d) EXPECT_EQ(variants[d].degree, d);
}

TEST(GradedRemoval, AmountsPerDegreeRoundHalfUp) {
  // 9 phrases, K = 4: round(9 d / 3) = 0, 3, 6, 9; K = 5: round(9 d / 4) = 0, 2 (2.25), 5 (4.5), 7 (6.75), 9.
  std::vector<int64_t> removed;
  for (const auto& v : graded_removal(kRakeText, GradedRemovalOptions().num_degrees(4))) removed.push_back(v.phrases_removed);
  EXPECT_EQ(removed, (std::vector<int64_t>{0, 3, 6, 9}));
  removed.clear();
  for (const auto& v : graded_removal(kRakeText, GradedRemovalOptions().num_degrees(5))) removed.push_back(v.phrases_removed);
  EXPECT_EQ(removed, (std::vector<int64_t>{0, 2, 5, 7, 9}));
  // Every occurrence of a removed phrase goes; the degrees remove strictly more bytes.
  const auto variants = graded_removal(kRakeText, GradedRemovalOptions().num_degrees(4));
  EXPECT_EQ(variants[1].text,
            "Compatibility of systems of over the set of. Criteria of compatibility of a system of are considered.");
  for (size_t d = 1; d < variants.size(); ++d) EXPECT_GT(variants[d].bytes_removed, variants[d - 1].bytes_removed);
  EXPECT_EQ(variants[3].text, "of of over the of. of of a of are.");
}

TEST(GradedRemoval, IsDeterministicAndHandlesDegenerateInputs) {
  const auto a = graded_removal(kRakeText);
  const auto b = graded_removal(kRakeText);
  ASSERT_EQ(a.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].text, b[i].text);
  const auto one = graded_removal(kRakeText, GradedRemovalOptions().num_degrees(1));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].text, kRakeText);
  for (const auto& v : graded_removal("of the and", GradedRemovalOptions().num_degrees(3))) {
    EXPECT_EQ(v.text, "of the and");
    EXPECT_EQ(v.phrases_removed, 0);
  }
}

TEST(GradedRemoval, BadOptionsGiveClearErrors) {
  using prefopt::testing::expect_error;
  expect_error([] { graded_removal("x", GradedRemovalOptions().num_degrees(0)); }, "num_degrees must be >= 1, got 0");
  expect_error([] { extract_keyphrases("x", KeyphraseOptions().max_words(-1)); }, "max_words must be >= 0 (0 = no cap), got -1");
  expect_error([] { extract_keyphrases("x", KeyphraseOptions().min_word_chars(0)); }, "min_word_chars must be >= 1, got 0");
}

}  // namespace
}  // namespace prefopt::data
