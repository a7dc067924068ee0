// Exposes the data layer's key-phrase augmentation as operators: torch.ops.prefopt.extract_keyphrases and
// .graded_removal (string in, strings out; no tensors), which make SPO's graded degrees of a text. Composite over
// the C++ functions; never touches a model or a loss.
#include <torch/library.h>

#include "op_support.h"
#include <prefopt/data/keyphrases.h>

namespace prefopt {
namespace {

using ops::view;

data::KeyphraseOptions keyphrase_options(int64_t max_words, int64_t max_phrases, int64_t min_word_chars,
                                         const std::optional<std::vector<std::string>>& stop_words) {
  return data::KeyphraseOptions()
      .max_words(max_words)
      .max_phrases(max_phrases)
      .min_word_chars(min_word_chars)
      .stop_words(stop_words.value_or(std::vector<std::string>{}));
}

std::tuple<std::vector<std::string>, std::vector<double>> extract_keyphrases_op(
    c10::string_view text, int64_t max_words, int64_t max_phrases, int64_t min_word_chars,
    const std::optional<std::vector<std::string>>& stop_words) {
  std::vector<std::string> phrases;
  std::vector<double> scores;
  for (const auto& k :
       data::extract_keyphrases(view(text), keyphrase_options(max_words, max_phrases, min_word_chars, stop_words))) {
    phrases.push_back(k.phrase);
    scores.push_back(k.score);
  }
  return {phrases, scores};
}

std::tuple<std::vector<std::string>, std::vector<int64_t>> graded_removal_op(
    c10::string_view text, int64_t num_degrees, int64_t max_words, int64_t min_word_chars,
    const std::optional<std::vector<std::string>>& stop_words) {
  const auto options = data::GradedRemovalOptions().num_degrees(num_degrees).keyphrases(
      keyphrase_options(max_words, /*max_phrases=*/0, min_word_chars, stop_words));
  std::vector<std::string> texts;
  std::vector<int64_t> removed;
  for (const auto& v : data::graded_removal(view(text), options)) {
    texts.push_back(v.text);
    removed.push_back(v.phrases_removed);
  }
  return {texts, removed};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "extract_keyphrases(str text, *, int max_words=4, int max_phrases=0, int min_word_chars=1, "
      "str[]? stop_words=None) -> (str[] phrases, float[] scores)");
  m.def(
      "graded_removal(str text, *, int num_degrees=4, int max_words=4, int min_word_chars=1, "
      "str[]? stop_words=None) -> (str[] texts, int[] phrases_removed)");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("extract_keyphrases", &extract_keyphrases_op);
  m.impl("graded_removal", &graded_removal_op);
}

}  // namespace prefopt
