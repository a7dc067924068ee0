// The Unicode character classes of the Rust crates behind Hugging Face's pre-tokenizers, and the rewriting of the
// Oniguruma patterns of tokenizer.json into PCRE2 patterns that match the same text. Categories come from utf8proc
// (Unicode 15.0) and PCRE2 (10.42: Unicode 14.0) plus a table of what Unicode 15.0 to 16.0 added, which is what the
// Oniguruma built into tokenizers 0.23 knows. Never allocates while classifying a character.
#include <utf8proc.h>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "pre_tokenizers_internal.h"

namespace prefopt::data::hf::pretok {

namespace {

constexpr auto kLU = UTF8PROC_CATEGORY_LU, kLL = UTF8PROC_CATEGORY_LL, kLM = UTF8PROC_CATEGORY_LM,
               kLO = UTF8PROC_CATEGORY_LO, kMN = UTF8PROC_CATEGORY_MN, kMC = UTF8PROC_CATEGORY_MC,
               kND = UTF8PROC_CATEGORY_ND, kNO = UTF8PROC_CATEGORY_NO, kPD = UTF8PROC_CATEGORY_PD,
               kPO = UTF8PROC_CATEGORY_PO, kSM = UTF8PROC_CATEGORY_SM, kSO = UTF8PROC_CATEGORY_SO,
               kCF = UTF8PROC_CATEGORY_CF;

struct CategoryRange {
  char32_t lo, hi;
  utf8proc_category_t category;
};

// Every code point whose general category in Oniguruma (Unicode 16.0, as tokenizers 0.23.3 matches \p{..}) differs
// from PCRE2 10.42's (Unicode 14.0): characters assigned since, and U+1171E (Mn before 16.0, Mc since). Generated,
// not typed in, by asking tokenizers' Split(Regex("\p{Xx}")) and PCRE2 about every code point for every category.
// It serves utf8proc (Unicode 15.0) too, for what that does not know.
constexpr CategoryRange kAddedSince14[] = {
    {0x897, 0x897, kMN}, {0xCF3, 0xCF3, kMC}, {0xECE, 0xECE, kMN}, {0x1B4E, 0x1B4F, kPO}, {0x1B7F, 0x1B7F, kPO},
    {0x1C89, 0x1C89, kLU}, {0x1C8A, 0x1C8A, kLL}, {0x2427, 0x2429, kSO}, {0x2FFC, 0x2FFF, kSO},
    {0x31E4, 0x31E5, kSO}, {0x31EF, 0x31EF, kSO}, {0xA7CB, 0xA7CC, kLU}, {0xA7CD, 0xA7CD, kLL},
    {0xA7DA, 0xA7DA, kLU}, {0xA7DB, 0xA7DB, kLL}, {0xA7DC, 0xA7DC, kLU}, {0x105C0, 0x105F3, kLO},
    {0x10D40, 0x10D49, kND}, {0x10D4A, 0x10D4D, kLO}, {0x10D4E, 0x10D4E, kLM}, {0x10D4F, 0x10D4F, kLO},
    {0x10D50, 0x10D65, kLU}, {0x10D69, 0x10D6D, kMN}, {0x10D6E, 0x10D6E, kPD}, {0x10D6F, 0x10D6F, kLM},
    {0x10D70, 0x10D85, kLL}, {0x10D8E, 0x10D8F, kSM}, {0x10EC2, 0x10EC4, kLO}, {0x10EFC, 0x10EFF, kMN},
    {0x1123F, 0x11240, kLO}, {0x11241, 0x11241, kMN}, {0x11380, 0x11389, kLO}, {0x1138B, 0x1138B, kLO},
    {0x1138E, 0x1138E, kLO}, {0x11390, 0x113B5, kLO}, {0x113B7, 0x113B7, kLO}, {0x113B8, 0x113BA, kMC},
    {0x113BB, 0x113C0, kMN}, {0x113C2, 0x113C2, kMC}, {0x113C5, 0x113C5, kMC}, {0x113C7, 0x113CA, kMC},
    {0x113CC, 0x113CD, kMC}, {0x113CE, 0x113CE, kMN}, {0x113CF, 0x113CF, kMC}, {0x113D0, 0x113D0, kMN},
    {0x113D1, 0x113D1, kLO}, {0x113D2, 0x113D2, kMN}, {0x113D3, 0x113D3, kLO}, {0x113D4, 0x113D5, kPO},
    {0x113D7, 0x113D8, kPO}, {0x113E1, 0x113E2, kMN}, {0x116D0, 0x116E3, kND}, {0x1171E, 0x1171E, kMC},
    {0x11B00, 0x11B09, kPO}, {0x11BC0, 0x11BE0, kLO}, {0x11BE1, 0x11BE1, kPO}, {0x11BF0, 0x11BF9, kND},
    {0x11F00, 0x11F01, kMN}, {0x11F02, 0x11F02, kLO}, {0x11F03, 0x11F03, kMC}, {0x11F04, 0x11F10, kLO},
    {0x11F12, 0x11F33, kLO}, {0x11F34, 0x11F35, kMC}, {0x11F36, 0x11F3A, kMN}, {0x11F3E, 0x11F3F, kMC},
    {0x11F40, 0x11F40, kMN}, {0x11F41, 0x11F41, kMC}, {0x11F42, 0x11F42, kMN}, {0x11F43, 0x11F4F, kPO},
    {0x11F50, 0x11F59, kND}, {0x11F5A, 0x11F5A, kMN}, {0x1342F, 0x1342F, kLO}, {0x13439, 0x1343F, kCF},
    {0x13440, 0x13440, kMN}, {0x13441, 0x13446, kLO}, {0x13447, 0x13455, kMN}, {0x13460, 0x143FA, kLO},
    {0x16100, 0x1611D, kLO}, {0x1611E, 0x16129, kMN}, {0x1612A, 0x1612C, kMC}, {0x1612D, 0x1612F, kMN},
    {0x16130, 0x16139, kND}, {0x16D40, 0x16D42, kLM}, {0x16D43, 0x16D6A, kLO}, {0x16D6B, 0x16D6C, kLM},
    {0x16D6D, 0x16D6F, kPO}, {0x16D70, 0x16D79, kND}, {0x18CFF, 0x18CFF, kLO}, {0x1B132, 0x1B132, kLO},
    {0x1B155, 0x1B155, kLO}, {0x1CC00, 0x1CCEF, kSO}, {0x1CCF0, 0x1CCF9, kND}, {0x1CD00, 0x1CEB3, kSO},
    {0x1D2C0, 0x1D2D3, kNO}, {0x1DF25, 0x1DF2A, kLL}, {0x1E030, 0x1E06D, kLM}, {0x1E08F, 0x1E08F, kMN},
    {0x1E4D0, 0x1E4EA, kLO}, {0x1E4EB, 0x1E4EB, kLM}, {0x1E4EC, 0x1E4EF, kMN}, {0x1E4F0, 0x1E4F9, kND},
    {0x1E5D0, 0x1E5ED, kLO}, {0x1E5EE, 0x1E5EF, kMN}, {0x1E5F0, 0x1E5F0, kLO}, {0x1E5F1, 0x1E5FA, kND},
    {0x1E5FF, 0x1E5FF, kPO}, {0x1F6DC, 0x1F6DC, kSO}, {0x1F774, 0x1F776, kSO}, {0x1F77B, 0x1F77F, kSO},
    {0x1F7D9, 0x1F7D9, kSO}, {0x1F8B2, 0x1F8BB, kSO}, {0x1F8C0, 0x1F8C1, kSO}, {0x1FA75, 0x1FA77, kSO},
    {0x1FA87, 0x1FA89, kSO}, {0x1FA8F, 0x1FA8F, kSO}, {0x1FAAD, 0x1FAAF, kSO}, {0x1FABB, 0x1FABF, kSO},
    {0x1FAC6, 0x1FAC6, kSO}, {0x1FACE, 0x1FACF, kSO}, {0x1FADA, 0x1FADC, kSO}, {0x1FADF, 0x1FADF, kSO},
    {0x1FAE8, 0x1FAE9, kSO}, {0x1FAF7, 0x1FAF8, kSO}, {0x1FBCB, 0x1FBEF, kSO}, {0x2B739, 0x2B739, kLO},
    {0x2EBF0, 0x2EE5D, kLO}, {0x31350, 0x323AF, kLO},
};

// General category P characters that the unicode_categories crate (Unicode 8.0 tables) behind is_punctuation does
// not count as punctuation: those assigned or recategorised since. Generated like kAddedSince14, from tokenizers'
// Punctuation pre-tokenizer.
constexpr std::pair<char32_t, char32_t> kPunctuationSince8[] = {
    {0x61D, 0x61D}, {0x9FD, 0x9FD}, {0xA76, 0xA76}, {0xC77, 0xC77}, {0xC84, 0xC84}, {0x1B4E, 0x1B4F},
    {0x1B7D, 0x1B7F}, {0x2E43, 0x2E4F}, {0x2E52, 0x2E5D}, {0x10D6E, 0x10D6E}, {0x10EAD, 0x10EAD}, {0x10F55, 0x10F59},
    {0x10F86, 0x10F89}, {0x113D4, 0x113D5}, {0x113D7, 0x113D8}, {0x1144B, 0x1144F}, {0x1145A, 0x1145B},
    {0x1145D, 0x1145D}, {0x11660, 0x1166C}, {0x116B9, 0x116B9}, {0x1183B, 0x1183B}, {0x11944, 0x11946},
    {0x119E2, 0x119E2}, {0x11A3F, 0x11A46}, {0x11A9A, 0x11A9C}, {0x11A9E, 0x11AA2}, {0x11B00, 0x11B09},
    {0x11BE1, 0x11BE1}, {0x11C41, 0x11C45}, {0x11C70, 0x11C71}, {0x11EF7, 0x11EF8}, {0x11F43, 0x11F4F},
    {0x11FFF, 0x11FFF}, {0x12FF1, 0x12FF2}, {0x16D6D, 0x16D6F}, {0x16E97, 0x16E9A}, {0x16FE2, 0x16FE2},
    {0x1E5FF, 0x1E5FF}, {0x1E95E, 0x1E95F},
};

// The row of kAddedSince14 holding `c`, or nullptr.
const CategoryRange* added_row(char32_t c) {
  const auto* it = std::upper_bound(std::begin(kAddedSince14), std::end(kAddedSince14), c,
                                    [](char32_t v, const CategoryRange& r) { return v < r.lo; });
  if (it == std::begin(kAddedSince14) || (--it)->hi < c) return nullptr;
  return it;
}

utf8proc_category_t category(char32_t c) {
  const auto known = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  if (known != UTF8PROC_CATEGORY_CN) return known;
  const CategoryRange* row = added_row(c);
  return row == nullptr ? UTF8PROC_CATEGORY_CN : row->category;
}

bool is_p_category(utf8proc_category_t c) { return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO; }

}  // namespace

bool is_whitespace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = category(c);
  if (cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO) return true;
  // Unicode 17.0 digits, which Rust's standard library knows and Oniguruma does not yet.
  return (c >= 0x11DE0 && c <= 0x11DE9) || (c >= 0x16FF4 && c <= 0x16FF6);
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                       (c >= 0x7B && c <= 0x7E);
  if (c == 0x166D || c == 0x111C9) return true;  // punctuation in Unicode 8.0, symbol and mark since
  if (!is_p_category(category(c))) return false;
  const auto* end = std::end(kPunctuationSince8);
  const auto* it = std::upper_bound(std::begin(kPunctuationSince8), end, c,
                                    [](char32_t v, const std::pair<char32_t, char32_t>& r) { return v < r.first; });
  return it == std::begin(kPunctuationSince8) || (--it)->second < c;
}

// ---- Oniguruma patterns for PCRE2 ---------------------------------------------------------------------------------

namespace {

// Indexed by utf8proc_category_t.
const char* const kCategoryNames[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd",
                                      "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                                      "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};

// Whether the property name `name` (as in \p{name}) covers general category `c`: a one-letter group or a category.
bool names_category(std::string_view name, utf8proc_category_t c) {
  const std::string_view full = kCategoryNames[c];
  if (name.size() == 1) return full[0] == name[0];
  return name == full;
}

void append_code_point(std::string& out, char32_t c) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "\\x{%X}", static_cast<unsigned>(c));
  out += buffer;
}

// The class body of what PCRE2 misses of the categories `names` covers (one entry per name, e.g. {"L", "M"});
// nothing unless `added` asks for it.
std::string added_since_14(bool added, std::initializer_list<std::string_view> names) {
  std::string out;
  if (!added) return out;
  std::vector<std::pair<char32_t, char32_t>> ranges;  // adjacent rows merged: PCRE2 tries a class's items in turn
  for (const CategoryRange& r : kAddedSince14) {
    if (!std::any_of(names.begin(), names.end(), [&](std::string_view n) { return names_category(n, r.category); }))
      continue;
    if (!ranges.empty() && ranges.back().second + 1 == r.lo) {
      ranges.back().second = r.hi;
    } else {
      ranges.emplace_back(r.lo, r.hi);
    }
  }
  for (const auto& [lo, hi] : ranges) {
    append_code_point(out, lo);
    if (hi != lo) {
      out += '-';
      append_code_point(out, hi);
    }
  }
  return out;
}

constexpr std::string_view kSpace = "\\p{White_Space}", kNotSpace = "\\P{White_Space}";

// Oniguruma's \w: Alphabetic, marks, decimal digits, connector punctuation; standing alone (not inside a class) also
// the superscripts ¹²³ and the fractions ¼½¾, which its Latin-1 fast path counts as word characters.
std::string onig_word_body(bool added, bool in_class) {
  std::string body = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";
  if (!in_class) body += "\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}";
  return body + added_since_14(added, {"L", "M", "Nd", "Pc"});
}

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Translates the escape at p[i] (a backslash) into `out` and returns how many bytes it spans. Outside a class a
// class escape becomes [body] or [^body]; inside one its body is appended, but a negated one (whose complement a
// class cannot spell) is handed back through `complement` when the caller can take it, and kept as PCRE2 reads it
// otherwise.
std::size_t translate_escape(bool added, std::string_view p, std::size_t i, bool in_class, std::string& out,
                             std::string* complement) {
  const char d = p[i + 1];
  bool kept = true;
  const auto put = [&](const std::string& body, bool negated) {
    if (!in_class) {
      out += negated ? "[^" : "[";
      out += body;
      out += ']';
    } else if (!negated) {
      out += body;
    } else if (complement != nullptr) {
      *complement = body;
    } else {
      kept = false;
    }
  };
  switch (d) {
    case 's': out += kSpace; return 2;
    case 'S': out += kNotSpace; return 2;
    case 'd': case 'D': put("\\p{Nd}" + added_since_14(added, {"Nd"}), d == 'D'); break;
    case 'w': case 'W': put(onig_word_body(added, in_class), d == 'W'); break;
    case 'h': case 'H': put("0-9A-Fa-f", d == 'H'); break;
    case 'u':
      if (i + 6 <= p.size() && is_hex(p[i + 2]) && is_hex(p[i + 3]) && is_hex(p[i + 4]) && is_hex(p[i + 5])) {
        out += "\\x{";
        out.append(p, i + 2, 4);
        out += '}';
        return 6;
      }
      kept = false;
      break;
    case 'p': case 'P': {
      const std::size_t close = i + 2 < p.size() && p[i + 2] == '{' ? p.find('}', i + 3) : std::string_view::npos;
      if (close == std::string_view::npos) {
        kept = false;
        break;
      }
      std::string_view name = p.substr(i + 3, close - i - 3);
      bool negated = d == 'P';
      if (!name.empty() && name[0] == '^') {
        negated = !negated;
        name.remove_prefix(1);
      }
      const std::string extra = added_since_14(added, {name});
      if (extra.empty()) {
        out.append(p, i, close + 1 - i);  // nothing PCRE2 lacks
      } else {
        put("\\p{" + std::string(name) + "}" + extra, negated);
        if (!kept) out.append(p, i, close + 1 - i);
      }
      return close + 1 - i;
    }
    default: kept = false; break;
  }
  if (!kept) out.append(p, i, 2);
  return 2;
}

// The PCRE2 class body of Oniguruma's POSIX bracket `bracket` ("[:digit:]"). alpha, alnum and lower miss what
// Unicode 15 and 16 changed in the Alphabetic and Lowercase properties of characters PCRE2 knows (under a hundred
// rare marks and modifier letters); the others are exact; graph, print and the negated forms stay PCRE2's.
std::string posix_body(bool added, std::string_view bracket) {
  const std::string_view name = bracket.substr(2, bracket.size() - 4);
  if (name == "digit") return "\\p{Nd}" + added_since_14(added, {"Nd"});
  if (name == "space") return std::string(kSpace);
  if (name == "word") return onig_word_body(added, true);
  if (name == "xdigit") return "0-9A-Fa-f";
  if (name == "punct") return "\\p{P}\\p{S}" + added_since_14(added, {"P", "S"});
  if (name == "upper") return "\\p{Uppercase}" + added_since_14(added, {"Lu"});
  if (name == "lower") return "\\p{Lowercase}" + added_since_14(added, {"Ll"});
  if (name == "cntrl") return "\\p{Cc}";
  if (name == "blank") return "\\p{Zs}\\t";
  if (name == "alpha") return "\\p{Alphabetic}" + added_since_14(added, {"L", "M"});
  if (name == "alnum") return "\\p{Alphabetic}\\p{Nd}" + added_since_14(added, {"L", "M", "Nd"});
  return std::string(bracket);
}

// Translates the class opening at p[i] into `out` and returns where it ends, or npos (nothing written) for what
// PCRE2 has no form of (Oniguruma's nested classes and && intersections) or an unterminated class. A class with
// negated escapes becomes an alternation: [a\W] is (?:[a]|[^w]), [^a\W] is (?:(?![a])[w]).
std::size_t translate_class(bool added, std::string_view p, std::size_t i, std::string& out) {
  const std::size_t n = p.size();
  std::size_t j = i + 1;
  const bool negated = j < n && p[j] == '^';
  if (negated) ++j;
  std::string positive;
  std::vector<std::string> complements;
  if (j < n && p[j] == ']') positive += p[j++];  // a ']' opening a class is literal
  while (j < n && p[j] != ']') {
    if (p[j] == '\\' && j + 1 < n) {
      std::string complement;
      j += translate_escape(added, p, j, true, positive, &complement);
      if (!complement.empty()) complements.push_back(std::move(complement));
    } else if (p[j] == '[' && j + 1 < n && p[j + 1] == ':' && p.find(":]", j + 2) != std::string_view::npos) {
      const std::size_t end = p.find(":]", j + 2) + 2;
      positive += posix_body(added, p.substr(j, end - j));
      j = end;
    } else if (p[j] == '[' || (p[j] == '&' && j + 1 < n && p[j + 1] == '&')) {
      return std::string_view::npos;
    } else {
      positive += p[j++];
    }
  }
  if (j >= n || (positive.empty() && complements.empty())) return std::string_view::npos;
  // A '^' that does not open the class must not come first in the classes written here.
  if (!positive.empty() && positive[0] == '^') positive.insert(0, 1, '\\');
  if (complements.empty()) {
    out += negated ? "[^" : "[";
    out += positive;
    out += ']';
  } else if (!negated) {
    out += "(?:";
    if (!positive.empty()) out += "[" + positive + "]|";
    for (std::size_t k = 0; k < complements.size(); ++k) out += (k ? "|[^" : "[^") + complements[k] + "]";
    out += ')';
  } else {
    // Not in positive and in every complemented body.
    out += "(?:";
    if (!positive.empty()) out += "(?![" + positive + "])";
    for (std::size_t k = 0; k + 1 < complements.size(); ++k) out += "(?=[" + complements[k] + "])";
    out += "[" + complements.back() + "])";
  }
  return j + 1;
}

}  // namespace

std::string rust_word_class(bool added) {
  return "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}" + added_since_14(added, {"L", "M", "Nd", "Pc"});
}

std::string onig_to_pcre2(std::string_view p, bool added) {
  // Ruby syntax, which the onig crate compiles with, makes ^ and $ line anchors.
  std::string out = "(?m)";
  out.reserve(p.size() + 64);
  int depth = 0;  // inside a class translate_class gave up on (they nest in Oniguruma)
  std::size_t i = 0;
  const std::size_t n = p.size();
  while (i < n) {
    const char c = p[i];
    if (c == '\\' && i + 1 < n) {
      i += translate_escape(added, p, i, depth > 0, out, nullptr);
      continue;
    }
    if (c == '[') {
      if (depth == 0) {
        const std::size_t end = translate_class(added, p, i, out);
        if (end != std::string_view::npos) {
          i = end;
          continue;
        }
      } else if (i + 1 < n && p[i + 1] == ':' && p.find(":]", i + 2) != std::string_view::npos) {
        const std::size_t end = p.find(":]", i + 2) + 2;
        out.append(p, i, end - i);
        i = end;
        continue;
      }
      ++depth;
      out += c;
      ++i;
      if (i < n && p[i] == '^') out += p[i++];
      if (i < n && p[i] == ']') out += p[i++];
      continue;
    }
    if (c == ']' && depth > 0) {
      --depth;
    } else if (c == '{' && depth == 0 && i + 1 < n && p[i + 1] == ',') {
      // Oniguruma reads {,n} as {0,n}; PCRE2 before 10.43 as literal text.
      std::size_t j = i + 2;
      while (j < n && p[j] >= '0' && p[j] <= '9') ++j;
      if (j > i + 2 && j < n && p[j] == '}') {
        out += "{0,";
        i += 2;
        continue;
      }
    }
    out += c;
    ++i;
  }
  return out;
}

bool has_added_since_14(std::string_view text) {
  // Every text a pattern runs on passes here: one bit per code point up to the table's last makes it a lookup.
  constexpr char32_t kLimit = std::end(kAddedSince14)[-1].hi + 1;
  static const std::vector<bool> added = [] {
    std::vector<bool> bits(kLimit);
    for (const CategoryRange& r : kAddedSince14)
      for (char32_t c = r.lo; c <= r.hi; ++c) bits[c] = true;
    return bits;
  }();
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char lead = p[i];
    if (lead < 0xE0) {  // nothing below U+0800 was added
      i += lead < 0x80 ? 1 : 2;
      continue;
    }
    char32_t c;
    if (lead < 0xF0) {
      c = (char32_t(lead & 0x0F) << 12) | (char32_t(p[i + 1] & 0x3F) << 6) | char32_t(p[i + 2] & 0x3F);
      i += 3;
    } else {
      c = (char32_t(lead & 0x07) << 18) | (char32_t(p[i + 1] & 0x3F) << 12) | (char32_t(p[i + 2] & 0x3F) << 6) |
          char32_t(p[i + 3] & 0x3F);
      i += 4;
    }
    if (c < kLimit && added[c]) return true;
  }
  return false;
}

OnigRegex compile_onig(std::string_view pattern, const JsonContext& ctx) {
  try {
    const std::string common = onig_to_pcre2(pattern, false), full = onig_to_pcre2(pattern, true);
    if (full == common) return OnigRegex(Regex(common, ctx));
    return OnigRegex(Regex(common, ctx), Regex(full, ctx));
  } catch (const FormatError&) {
    // Report the pattern as the file spells it when it is invalid as it stands, the rewritten one otherwise.
    Regex as_written(pattern, ctx);
    throw;
  }
}

}  // namespace prefopt::data::hf::pretok
