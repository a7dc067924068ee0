// Key-phrase extraction (RAKE-style) and graded removal of key content, the data side of SPO's
// preference-degree loss (LOSSES.md section 6; Li et al. 2024, arXiv 2409.17791, whose extractor is RAKE).
// Plain text processing, deterministic: the same text and options always give the same phrases and variants.
// Depends on the standard library only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/arg.h>

namespace prefopt::data {

/// Options of extract_keyphrases.
struct KeyphraseOptions {
  /// Candidate phrases longer than this many words are dropped (RAKE's usual cap); 0 = no cap.
  TORCH_ARG(int64_t, max_words) = 4;
  /// Keep only the best this many phrases; 0 = all.
  TORCH_ARG(int64_t, max_phrases) = 0;
  /// Words shorter than this many characters end a candidate phrase, as stop-words do.
  TORCH_ARG(int64_t, min_word_chars) = 1;
  /// Stop-words (lower case); empty = default_stop_words().
  TORCH_ARG(std::vector<std::string>, stop_words) = {};
};

/// A key phrase and where it occurs.
struct Keyphrase {
  /// The phrase's words in lower case, joined by single spaces.
  std::string phrase;
  /// RAKE score: the sum over its words of degree(word) / frequency(word).
  double score = 0;
  /// Byte ranges [begin, end) of every occurrence in the text, in order.
  std::vector<std::pair<std::size_t, std::size_t>> spans;
};

/// The built-in English stop-word list (lower case, sorted).
const std::vector<std::string>& default_stop_words();

/// RAKE-style key-phrase extraction:
/// 1. Words are maximal runs of letters, digits, apostrophes, hyphens and bytes >= 0x80 (UTF-8 text);
///    they are compared in ASCII lower case.
/// 2. Candidate phrases are maximal runs of consecutive words not interrupted by a stop-word, a word shorter
///    than min_word_chars, or punctuation (any other non-space byte); a line break also ends a phrase.
///    Candidates longer than max_words are dropped.
/// 3. Over all candidate occurrences: frequency(w) = occurrences of w, degree(w) = sum of the lengths (in
///    words) of the candidates that contain w (each occurrence counts). A word's score is degree/frequency,
///    a phrase's the sum of its words' scores.
/// 4. Distinct phrases sorted by score descending, ties by first occurrence; the first max_phrases kept.
///
/// Example:
/// ```
/// auto phrases = prefopt::data::extract_keyphrases("Compatibility of systems of linear constraints.");
/// phrases[0].phrase;   // "linear constraints" (score 4), then "compatibility" (1), "systems" (1)
/// ```
std::vector<Keyphrase> extract_keyphrases(std::string_view text, const KeyphraseOptions& options = {});

/// Options of graded_removal.
struct GradedRemovalOptions {
  /// K >= 1 degrees: 0 (untouched) .. K - 1 (every key phrase removed).
  TORCH_ARG(int64_t, num_degrees) = 4;
  TORCH_ARG(KeyphraseOptions, keyphrases) = {};
};

/// A degree variant of a text.
struct DegreeVariant {
  std::string text;
  /// 0 = untouched; higher = more key content removed.
  int64_t degree = 0;
  /// How many of the ranked key phrases were removed (every occurrence of each).
  int64_t phrases_removed = 0;
  /// Bytes removed from the original text (phrase occurrences plus the whitespace collapsed around them).
  int64_t bytes_removed = 0;
};

/// SPO's graded-removal augmentation (prefopt's reading; the paper's code was not public): the key phrases
/// of `text` are ranked by extract_keyphrases, and the variant of degree d removes every occurrence of the
/// top `round(n d / (K - 1))` phrases (n phrases found; round half up), so degree 0 is the text unchanged
/// and degree K - 1 removes them all. Removing an occurrence also drops one adjacent space so that no
/// double space, and no space before punctuation, is left; nothing else is changed. A text with no key
/// phrase gives K identical variants.
///
/// Example:
/// ```
/// auto variants = prefopt::data::graded_removal(response, prefopt::data::GradedRemovalOptions().num_degrees(3));
/// variants[0].text == response;   // degree 0; variants[2] has every key phrase removed
/// ```
std::vector<DegreeVariant> graded_removal(std::string_view text, const GradedRemovalOptions& options = {});

}  // namespace prefopt::data
