// RAKE-style key-phrase extraction and SPO's graded removal (see include/prefopt/data/keyphrases.h for the
// exact rules). Byte-oriented: ASCII is classified, every byte >= 0x80 is a word byte, so UTF-8 text is
// handled without decoding and byte offsets index the original string. No locale, no randomness.
#include <prefopt/data/keyphrases.h>

#include <algorithm>
#include <map>
#include <unordered_set>

#include <c10/util/Exception.h>

namespace prefopt::data {
namespace {

enum class ByteClass { Word, Joiner, Space, Break };

ByteClass classify(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80) return ByteClass::Word;
  if (c == '\'' || c == '-') return ByteClass::Joiner;  // inside a word only: "don't", "state-of-the-art"
  if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') return ByteClass::Space;
  return ByteClass::Break;  // punctuation and line breaks end a phrase
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A word, or a phrase break (punctuation, a line break, a stop-word or a too-short word).
struct Token {
  std::size_t begin = 0, end = 0;
  std::string word;  // lower case; empty for a break
};

std::vector<Token> tokenize(std::string_view text) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const ByteClass c = classify(static_cast<unsigned char>(text[i]));
    if (c == ByteClass::Space) {
      ++i;
      continue;
    }
    if (c == ByteClass::Break) {
      tokens.push_back({i, i + 1, ""});
      ++i;
      continue;
    }
    // A run of word and joiner bytes; joiners at either end are trimmed off and act as breaks.
    std::size_t j = i;
    while (j < n) {
      const ByteClass d = classify(static_cast<unsigned char>(text[j]));
      if (d != ByteClass::Word && d != ByteClass::Joiner) break;
      ++j;
    }
    std::size_t b = i, e = j;
    while (b < e && classify(static_cast<unsigned char>(text[b])) == ByteClass::Joiner) ++b;
    while (e > b && classify(static_cast<unsigned char>(text[e - 1])) == ByteClass::Joiner) --e;
    if (b > i) tokens.push_back({i, b, ""});
    if (e > b) tokens.push_back({b, e, lower(text.substr(b, e - b))});
    if (j > e) tokens.push_back({e, j, ""});
    i = j;
  }
  return tokens;
}

struct Candidate {
  std::vector<std::string> words;
  std::size_t begin = 0, end = 0;
};

}  // namespace

const std::vector<std::string>& default_stop_words() {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w = {
        "a",       "about",   "above",  "after",  "again",   "against", "all",     "also",   "am",      "an",
        "and",     "any",     "are",    "as",     "at",      "be",      "because", "been",   "before",  "being",
        "below",   "between", "both",   "but",    "by",      "can",     "could",   "did",    "do",      "does",
        "doing",   "down",    "during", "each",   "either",  "else",    "etc",     "even",   "ever",    "every",
        "few",     "for",     "from",   "further", "had",    "has",     "have",    "having", "he",      "her",
        "here",    "hers",    "herself", "him",   "himself", "his",     "how",     "however", "i",      "if",
        "in",      "into",    "is",     "it",     "it's",    "its",     "itself",  "just",   "may",     "me",
        "might",   "more",    "most",   "much",   "must",    "my",      "myself",  "no",     "nor",     "not",
        "now",     "of",      "off",    "on",     "once",    "one",     "only",    "or",     "other",   "ought",
        "our",     "ours",    "ourselves", "out", "over",    "own",     "per",     "same",   "shall",   "she",
        "should",  "so",      "some",   "such",   "than",    "that",    "the",     "their",  "theirs",  "them",
        "themselves", "then", "there",  "these",  "they",    "this",    "those",   "through", "thus",   "to",
        "too",     "under",   "until",  "up",     "upon",    "us",      "very",    "via",    "was",     "we",
        "were",    "what",    "when",   "where",  "whether", "which",   "while",   "who",    "whom",    "whose",
        "why",     "will",    "with",   "within", "without", "would",   "yet",     "you",    "your",    "yours",
        "yourself", "yourselves"};
    std::sort(w.begin(), w.end());
    return w;
  }();
  return words;
}

std::vector<Keyphrase> extract_keyphrases(std::string_view text, const KeyphraseOptions& options) {
  TORCH_CHECK(options.max_words() >= 0, "max_words must be >= 0 (0 = no cap), got ", options.max_words());
  TORCH_CHECK(options.max_phrases() >= 0, "max_phrases must be >= 0 (0 = all), got ", options.max_phrases());
  TORCH_CHECK(options.min_word_chars() >= 1, "min_word_chars must be >= 1, got ", options.min_word_chars());
  const std::vector<std::string>& stop_list = options.stop_words().empty() ? default_stop_words() : options.stop_words();
  std::unordered_set<std::string> stop;
  for (const std::string& w : stop_list) stop.insert(lower(w));

  // 1-2. Candidate phrase occurrences.
  std::vector<Candidate> candidates;
  Candidate current;
  auto close = [&] {
    if (!current.words.empty() &&
        (options.max_words() == 0 || static_cast<int64_t>(current.words.size()) <= options.max_words())) {
      candidates.push_back(current);
    }
    current = Candidate();
  };
  for (const Token& t : tokenize(text)) {
    const bool is_word = !t.word.empty() && stop.count(t.word) == 0 &&
                         static_cast<int64_t>(t.end - t.begin) >= options.min_word_chars();
    if (!is_word) {
      close();
      continue;
    }
    if (current.words.empty()) current.begin = t.begin;
    current.words.push_back(t.word);
    current.end = t.end;
  }
  close();

  // 3. Word frequency and degree over the candidate occurrences.
  std::map<std::string, double> frequency, degree;
  for (const Candidate& c : candidates) {
    for (const std::string& w : c.words) {
      frequency[w] += 1;
      degree[w] += static_cast<double>(c.words.size());
    }
  }

  // 4. Distinct phrases, their scores and spans, in first-occurrence order, then sorted by score.
  std::vector<Keyphrase> phrases;
  std::map<std::string, std::size_t> index;
  for (const Candidate& c : candidates) {
    std::string key;
    for (std::size_t i = 0; i < c.words.size(); ++i) key += (i ? " " : "") + c.words[i];
    auto it = index.find(key);
    if (it == index.end()) {
      Keyphrase k;
      k.phrase = key;
      for (const std::string& w : c.words) k.score += degree[w] / frequency[w];
      index.emplace(key, phrases.size());
      phrases.push_back(std::move(k));
      it = index.find(key);
    }
    phrases[it->second].spans.emplace_back(c.begin, c.end);
  }
  std::stable_sort(phrases.begin(), phrases.end(),
                   [](const Keyphrase& a, const Keyphrase& b) { return a.score > b.score; });
  if (options.max_phrases() > 0 && static_cast<int64_t>(phrases.size()) > options.max_phrases()) {
    phrases.resize(static_cast<std::size_t>(options.max_phrases()));
  }
  return phrases;
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

// The text without the given (sorted, disjoint) byte ranges, with the whitespace around each removal tidied.
std::string remove_spans(std::string_view text, const std::vector<std::pair<std::size_t, std::size_t>>& spans) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  for (const auto& [begin, end] : spans) {
    out.append(text.substr(at, begin - at));
    std::size_t next = end;
    const bool open = out.empty() || is_space(out.back()) || out.back() == '\n';
    if (open) {
      while (next < text.size() && is_space(text[next])) ++next;  // no double space
      const bool punctuation_next = next < text.size() && classify(static_cast<unsigned char>(text[next])) == ByteClass::Break &&
                                    text[next] != '\n';
      if (punctuation_next && !out.empty() && is_space(out.back())) out.pop_back();  // no space before punctuation
    }
    at = next;
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace

std::vector<DegreeVariant> graded_removal(std::string_view text, const GradedRemovalOptions& options) {
  const int64_t k = options.num_degrees();
  TORCH_CHECK(k >= 1, "num_degrees must be >= 1, got ", k);
  const std::vector<Keyphrase> phrases = extract_keyphrases(text, options.keyphrases());
  const int64_t n = static_cast<int64_t>(phrases.size());
  std::vector<DegreeVariant> variants;
  for (int64_t d = 0; d < k; ++d) {
    // round(n d / (k - 1)), halves up, in integers.
    const int64_t m = k == 1 ? 0 : (2 * n * d + (k - 1)) / (2 * (k - 1));
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    for (int64_t i = 0; i < m; ++i) spans.insert(spans.end(), phrases[i].spans.begin(), phrases[i].spans.end());
    std::sort(spans.begin(), spans.end());
    DegreeVariant v;
    v.degree = d;
    v.phrases_removed = m;
    v.text = m == 0 ? std::string(text) : remove_spans(text, spans);
    v.bytes_removed = static_cast<int64_t>(text.size()) - static_cast<int64_t>(v.text.size());
    variants.push_back(std::move(v));
  }
  return variants;
}

}  // namespace prefopt::data
