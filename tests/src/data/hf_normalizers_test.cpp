// Tests of the tokenizer.json normalizers (make_normalizer): every type's text on inputs whose expected values come
// from Hugging Face's tokenizers 0.23.3 (Python: normalizers.X(...).normalize_str, /tmp/hfnorm/expected_norm.py),
// including where the Rust crates' Unicode data differs from utf8proc's; the origins of a few normalizations; and
// the error messages with their JSON paths. The exhaustive comparison (every code point, random strings) lives
// with the golden scripts, not here.
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "data/hf/components.h"

namespace prefopt::data::hf {
namespace {

using nlohmann::json;
using namespace std::string_literals;

std::unique_ptr<Normalizer> make(const std::string& spec) {
  return make_normalizer(json::parse(spec), JsonContext{"tokenizer.json", "$.normalizer"});
}

std::string normalize(const std::string& spec, const std::string& text) {
  Piece piece{text, {}};
  make(spec)->normalize(piece);
  EXPECT_TRUE(piece.origin.empty()) << "an untracked piece must stay untracked";
  return piece.text;
}

// `text` normalized with offsets tracked from `base` on: the piece (text and origin).
Piece tracked(const std::string& spec, const std::string& text, uint32_t base = 0) {
  Piece piece{text, std::vector<uint32_t>(text.size() + 1)};
  std::iota(piece.origin.begin(), piece.origin.end(), base);
  make(spec)->normalize(piece);
  EXPECT_EQ(piece.origin.size(), piece.text.size() + 1);
  return piece;
}

std::string error_of(const std::string& spec) {
  try {
    make(spec);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "no error";
}

struct Case {
  std::string spec;
  std::string in, out;
};

std::string bert(bool clean, bool chinese, const char* strip_accents, bool lower) {
  return std::string(R"({"type":"BertNormalizer","clean_text":)") + (clean ? "true" : "false") +
         ",\"handle_chinese_chars\":" + (chinese ? "true" : "false") + ",\"strip_accents\":" + strip_accents +
         ",\"lowercase\":" + (lower ? "true" : "false") + "}";
}

void expect_cases(const std::vector<Case>& cases) {
  for (const Case& c : cases) EXPECT_EQ(normalize(c.spec, c.in), c.out) << c.spec << " on \"" << c.in << "\"";
}

TEST(HfNormalizers, UnicodeForms) {
  expect_cases({
      {R"({"type":"NFC"})", "e\u0301le\u0300ve", "élève"},
      {R"({"type":"NFC"})", "\u1112\u1161\u11AB", "\uD55C"},  // conjoining jamo compose into one syllable
      {R"({"type":"NFC"})", "\u212B", "\u00C5"},              // a singleton decomposition
      {R"({"type":"NFC"})", "a\u0316\u0301", "\u00E1\u0316"},  // U+0301 is not blocked by the lower class
      {R"({"type":"NFC"})", "\u0B47\u0B3E", "\u0B4B"},        // a second of combining class 0
      {R"({"type":"NFD"})", "élève", "e\u0301le\u0300ve"},
      {R"({"type":"NFD"})", "\uD55C", "\u1112\u1161\u11AB"},
      {R"({"type":"NFD"})", "\u1E69", "s\u0323\u0307"},
      {R"({"type":"NFD"})", "a\u0301\u0316", "a\u0316\u0301"},  // canonical reordering
      {R"({"type":"NFKC"})", "ﬁ½Ⅸ①ｶﾞ", "fi1⁄2IX1ガ"},
      {R"({"type":"NFKC"})", "x\u00A0y\u3000z", "x y z"},
      {R"({"type":"NFKD"})", "ﬁé", "fie\u0301"},
      {R"({"type":"NFKD"})", "\u01C4", "DZ\u030C"},
      {R"({"type":"NFC"})", "", ""},
      {R"({"type":"NFKD"})", "plain ASCII stays", "plain ASCII stays"},
  });
}

TEST(HfNormalizers, UnicodeFormsFollowTheRustTables) {
  // The Rust crate's tables are older than utf8proc's: it neither decomposes these nor reorders or composes marks
  // it does not know (U+1DF6 has class 232 in utf8proc, none in the crate; U+11938 is Unicode 13).
  expect_cases({
      {R"({"type":"NFC"})", "a\u1DF6\u0301", "a\u1DF6\u0301"},
      {R"({"type":"NFD"})", "\U00011938", "\U00011938"},
      {R"({"type":"NFC"})", "\U00011935\U00011930", "\U00011935\U00011930"},
      {R"({"type":"NFKC"})", "\u32FF", "\u32FF"},
      {R"({"type":"NFKD"})", "\U0001E030\uA7F2", "\U0001E030\uA7F2"},
  });
}

TEST(HfNormalizers, Lowercase) {
  expect_cases({
      {R"({"type":"Lowercase"})", "HeLLo İSTANBUL ΣΑΣ ẞ", "hello i\u0307stanbul σασ ß"},  // İ: two characters
      {R"({"type":"Lowercase"})", "\u2126\u212A", "\u03C9k"},  // Ohm and Kelvin signs shrink in UTF-8
      {R"({"type":"Lowercase"})", "\uA7CB\U00010D50", "\u0264\U00010D70"},  // Unicode 16, which Rust's std has
      {R"({"type":"Lowercase"})", "already lower, 123", "already lower, 123"},
  });
}

TEST(HfNormalizers, StripPrependReplace) {
  expect_cases({
      {R"({"type":"Strip","strip_left":true,"strip_right":true})", " \t\u3000 a b \n\u00A0", "a b"},
      {R"({"type":"Strip","strip_left":true,"strip_right":true})", "   ", ""},
      // Neither U+200B nor U+180E is White_Space.
      {R"({"type":"Strip","strip_left":true,"strip_right":true})", "\u200B x \u180E", "\u200B x \u180E"},
      {R"({"type":"Strip","strip_left":true,"strip_right":false})", " \t a b \n", "a b \n"},
      {R"({"type":"Strip","strip_left":false,"strip_right":true})", " \t a b \n", " \t a b"},
      {R"({"type":"Prepend","prepend":"▁"})", "hi", "▁hi"},
      {R"({"type":"Prepend","prepend":"▁"})", "", ""},
      {R"({"type":"Replace","pattern":{"String":" "},"content":"▁"})", "a b  c", "a▁b▁▁c"},
      {R"({"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "})", "a  b    c d", "a b c d"},
      // No empty match right after a match, as Oniguruma's find_iter.
      {R"({"type":"Replace","pattern":{"Regex":"x*"},"content":"-"})", "axxb", "-a-b-"},
      {R"({"type":"Replace","pattern":{"Regex":"x*"},"content":"-"})", "", ""},
  });
}

TEST(HfNormalizers, BertNormalizer) {
  expect_cases({
      {R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"lowercase":true})",
       "Héllo\tWörld\x00\u00AD中文  İ\x0b\uFFFD"s, "hello world 中  文   i"},
      {bert(true, true, "null", false),
       "Héllo\tWörld 中文", "Héllo Wörld  中  文 "},
      {bert(false, false, "true", false),
       "Héllo\x00 中"s, "Hello\x00 中"s},
      {bert(true, true, "false", true),
       "Héllo", "héllo"},
      {R"({"type":"Bert","clean_text":false,"handle_chinese_chars":false,"lowercase":true})", "ÀB", "ab"},
      // Classes of the crates' older Unicode: U+0890 (Cf since Unicode 14) is kept, U+1734 (Mc since 14) is a
      // nonspacing mark to them.
      {bert(true, false, "true", false),
       "a\u0890b\u1734c\u0301", "a\u0890bc"},
  });
}

TEST(HfNormalizers, StripAccentsNmtByteLevelSequence) {
  expect_cases({
      // U+1CF2 is a mark to the crate (an older Unicode), U+07FD (Unicode 11) is not.
      {R"({"type":"StripAccents"})", "e\u0301\u1CF2\u07FD\u20DD", "e\u07FD"},
      {R"({"type":"Nmt"})", "a\x01" "b\u200Bc\uFEFFd\te", "ab c d e"},
      {R"({"type":"ByteLevel"})", "é a\n", "Ã©ĠaĊ"},
      {R"({"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Lowercase"}]})", "ＡＢＣ ﬁ", "abc fi"},
      {R"({"type":"Sequence","normalizers":[]})", "As Is", "As Is"},
  });
}

// A SentencePiece charsmap built for this test (/tmp/hfnorm/tiny_charsmap.py): keys ﬁ, Ⅸ, e, U+3000, U+00A0,
// "ab", U+200B, as a Darts double array of 512 units (the non-zero ones below) plus the replacements' blob.
std::string tiny_charsmap_base64() {
  const std::vector<std::pair<int, uint32_t>> units = {
      {0, 0x400},       {2, 0x8000000c},  {4, 0x80000006},  {6, 0x8000000a},  {9, 0x80000010},  {11, 0x80000003},
      {14, 0x80000008}, {17, 0x80000000}, {96, 0x18c61},    {97, 0x18d62},    {100, 0x18165},   {130, 0x22085},
      {131, 0x2298b},   {135, 0x23c80},   {140, 0x20480},   {141, 0x20d80},   {145, 0x20181},   {162, 0x2a5a8},
      {163, 0x2ccac},   {165, 0x28da0},   {195, 0x318c2},   {226, 0x3b8e3},   {227, 0x390e2},   {238, 0x384ef}};
  std::vector<uint32_t> array(512, 0);
  for (const auto& [i, u] : units) array[i] = u;
  std::string bytes;
  const auto put = [&](uint32_t v) {
    for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
  };
  put(4 * 512);
  for (uint32_t u : array) put(u);
  bytes += "fi\0IX\0E\0 \0 \0AB!\0\0"s;
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t group = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      group = (group << 8) | (i + k < bytes.size() ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    }
    for (std::size_t k = 0; k < 4; ++k) {
      out.push_back(i + k <= bytes.size() ? alphabet[(group >> (18 - 6 * k)) & 63] : '=');
    }
  }
  return out;
}

TEST(HfNormalizers, Precompiled) {
  const std::string spec = R"({"type":"Precompiled","precompiled_charsmap":")" + tiny_charsmap_base64() + "\"}";
  expect_cases({
      {spec, "ﬁne Ⅸ", "finE IX"},
      // A grapheme under 6 bytes takes the entry of its shortest matching prefix, whole ("e" + U+0301 -> "E").
      {spec, "e\u0301x", "Ex"},
      {spec, "ab abc a b", "ab abc a b"},  // "a" and "b" are separate graphemes: the "ab" entry never applies
      {spec, "x\u200By\u3000z", "xy z"},
      {spec, "\U0001F44D\U0001F3FBe", "\U0001F44D\U0001F3FBE"},
      {spec, "", ""},
  });
}

TEST(HfNormalizers, Origins) {
  // Each output byte maps to the original offset of the character it came from; kept bytes keep theirs; the end
  // entry follows the last character that produced output.
  Piece p = tracked(R"({"type":"NFD"})", "élève");
  EXPECT_EQ(p.text, "e\u0301le\u0300ve");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 0, 0, 2, 3, 3, 3, 5, 6, 7}));
  p = tracked(R"({"type":"NFC"})", "e\u0301x");  // composed: mapped to the first character
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 0, 3, 4}));
  p = tracked(R"({"type":"NFC"})", "\u1112\u1161\u11AB!");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 0, 0, 9, 10}));
  p = tracked(R"({"type":"Lowercase"})", "İx");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 0, 0, 2, 3}));
  p = tracked(R"({"type":"Lowercase"})", "ÉA");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 0, 2, 3}));
  p = tracked(R"({"type":"Strip","strip_left":true,"strip_right":true})", " ab \t", 100);
  EXPECT_EQ(p.text, "ab");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{101, 102, 103}));  // ends where "b" ends, not at the stripped end
  p = tracked(R"({"type":"Prepend","prepend":"▁"})", "ab");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 0, 0, 0, 1, 2}));
  p = tracked(R"({"type":"Replace","pattern":{"String":"  "},"content":" "})", "a  b");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 1, 3, 4}));
  p = tracked(R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"lowercase":false})", "a中b");
  EXPECT_EQ(p.text, "a 中 b");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 1, 1, 1, 1, 1, 4, 5}));
  p = tracked(R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"lowercase":false})",
              "a\x01" "b\x01");
  EXPECT_EQ(p.text, "ab");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 2, 3}));
  p = tracked(R"({"type":"ByteLevel"})", "é");  // one character per byte, each at its byte
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 0, 1, 1, 2}));
  p = tracked(R"({"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Lowercase"}]})", "ＡＢ");
  EXPECT_EQ(p.text, "ab");
  EXPECT_EQ(p.origin, (std::vector<uint32_t>{0, 3, 6}));
}

TEST(HfNormalizers, NullIsNoNormalizer) {
  EXPECT_EQ(make_normalizer(json(nullptr), JsonContext{"tokenizer.json", "$.normalizer"}), nullptr);
}

TEST(HfNormalizers, ErrorsNameTheJsonPath) {
  EXPECT_EQ(error_of(R"({"type":"Foo"})"), "tokenizer.json: $.normalizer.type: unknown normalizer type \"Foo\"");
  EXPECT_EQ(error_of(R"({"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"X"}]})"),
            "tokenizer.json: $.normalizer.normalizers[1].type: unknown normalizer type \"X\"");
  EXPECT_EQ(error_of(R"({"type":"Sequence","normalizers":[{"type":"NFC"},null]})"),
            "tokenizer.json: $.normalizer.normalizers[1]: expected a normalizer, got null");
  EXPECT_EQ(error_of(R"({"type":"Sequence"})"), "tokenizer.json: $.normalizer: missing field \"normalizers\"");
  EXPECT_EQ(error_of(R"({})"), "tokenizer.json: $.normalizer: missing field \"type\"");
  EXPECT_EQ(error_of(R"(5)"), "tokenizer.json: $.normalizer: expected an object, got an integer");
  EXPECT_EQ(error_of(R"({"type":"Strip","strip_left":true})"),
            "tokenizer.json: $.normalizer: missing field \"strip_right\"");
  EXPECT_EQ(error_of(R"({"type":"Prepend","prepend":5})"),
            "tokenizer.json: $.normalizer.prepend: expected a string, got an integer");
  EXPECT_EQ(error_of(R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"lowercase":"yes"})"),
            "tokenizer.json: $.normalizer.lowercase: expected a boolean, got a string");
  EXPECT_EQ(error_of(R"({"type":"Replace","pattern":{"Glob":"*"},"content":""})"),
            "tokenizer.json: $.normalizer.pattern: unknown pattern kind \"Glob\", expected String or Regex");
  EXPECT_EQ(error_of(R"({"type":"Replace","pattern":{"String":"a"}})"),
            "tokenizer.json: $.normalizer: missing field \"content\"");
  EXPECT_EQ(error_of(R"({"type":"Replace","pattern":{"Regex":"("},"content":""})")
                .rfind("tokenizer.json: $.normalizer.pattern.Regex: invalid regex \"(\"", 0),
            0u);
  EXPECT_EQ(error_of(R"({"type":"Precompiled","precompiled_charsmap":"@@@@"})"),
            "tokenizer.json: $.normalizer.precompiled_charsmap: invalid base64 character at offset 0");
  EXPECT_EQ(error_of(R"({"type":"Precompiled","precompiled_charsmap":"CAAAAA=="})"),
            "tokenizer.json: $.normalizer.precompiled_charsmap: cannot parse precompiled_charsmap: truncated trie");
  EXPECT_EQ(error_of(R"({"type":"Precompiled","precompiled_charsmap":null})"),
            "tokenizer.json: $.normalizer.precompiled_charsmap: expected a base64 string, got null");
}

}  // namespace
}  // namespace prefopt::data::hf
