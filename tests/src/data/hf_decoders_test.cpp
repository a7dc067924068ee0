// Tests of the tokenizer.json decoders (make_decoder): every type on token lists whose expected decodes come from
// Hugging Face's tokenizers 0.23.3 (Python: decoders.X(...).decode, /tmp/hfnorm/expected_dec.py), the per-token
// chains where they matter, and the error messages with their JSON paths. The randomized comparison lives with the
// golden scripts, not here.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "data/hf/components.h"

namespace prefopt::data::hf {
namespace {

using nlohmann::json;
using namespace std::string_literals;
using Tokens = std::vector<std::string>;

std::unique_ptr<Decoder> make(const std::string& spec) {
  return make_decoder(json::parse(spec), JsonContext{"tokenizer.json", "$.decoder"});
}

Tokens chain(const std::string& spec, Tokens tokens) {
  make(spec)->decode_chain(tokens);
  return tokens;
}

// What Python's Decoder.decode returns: the chain, concatenated.
std::string decode(const std::string& spec, const Tokens& tokens) {
  std::string out;
  for (const std::string& t : chain(spec, tokens)) out += t;
  return out;
}

std::string error_of(const std::string& spec) {
  try {
    make(spec);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "no error";
}

constexpr const char* kByteLevel =
    R"({"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true})";

TEST(HfDecoders, ByteLevel) {
  // Bytes of all tokens are joined before the lossy UTF-8 conversion: "é" split over two tokens survives.
  EXPECT_EQ(chain(kByteLevel, {"Ġh", "Ã", "©llo"}), Tokens{" héllo"});
  EXPECT_EQ(decode(kByteLevel, {"Ġ", "ä", "¸", "Ń", "æĸĩ"}), " 中文");
  // Invalid sequences become U+FFFD as Rust's from_utf8_lossy does; "ĀA" is bytes 0x00 and 'A'.
  EXPECT_EQ(decode(kByteLevel, {"Ã", "Ġ", "ÿ", "ĀA"}), "\uFFFD \uFFFD\x00" "A"s);
  EXPECT_EQ(decode(kByteLevel, {"中", "Ġx"}), "中 x");  // a character outside the table: the token as it is
  EXPECT_EQ(chain(kByteLevel, {}), Tokens{""});
}

TEST(HfDecoders, Metaspace) {
  const char* always = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true})";
  EXPECT_EQ(decode(always, {"▁Hey", "▁friend", "!", "▁▁x▁"}), "Hey friend!  x ");
  // Every replacement of the first token goes, not only a leading one.
  EXPECT_EQ(chain(always, {"▁a▁b", "▁c"}), (Tokens{"ab", " c"}));
  EXPECT_EQ(decode(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"first"})", {"▁a▁b", "▁c"}), "ab c");
  EXPECT_EQ(decode(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"never"})", {"▁a▁b", "▁c"}), " a b c");
  EXPECT_EQ(decode(R"({"type":"Metaspace","replacement":"▁","add_prefix_space":true,"str_rep":"▁"})", {"▁a"}), "a");
}

TEST(HfDecoders, ByteFallback) {
  const char* spec = R"({"type":"ByteFallback"})";
  // A run of byte tokens that is not UTF-8 gives one U+FFFD per byte; "<0x+F>" is byte 0x0F (Rust's from_str_radix
  // takes a sign); malformed byte tokens stay as they are.
  EXPECT_EQ(decode(spec, {"<0x61>", "b", "<0xC3>", "<0xA9>", "<0xE2>", "<0x82>", "c", "<0x+F>", "<0xZZ>", "<0x41"}),
            "ab\uFFFD\uFFFD\uFFFD\uFFFDc\x0f<0xZZ><0x41");
  EXPECT_EQ(chain(spec, {"<0xC3>", "<0xA9>", "x", "<0xE2>", "<0x82>"}), (Tokens{"é", "x", "\uFFFD", "\uFFFD"}));
}

TEST(HfDecoders, FuseStripReplace) {
  EXPECT_EQ(chain(R"({"type":"Fuse"})", {"a", "b", " c"}), Tokens{"ab c"});
  EXPECT_EQ(chain(R"({"type":"Strip","content":" ","start":1,"stop":0})", {" a", "  b ", "c"}),
            (Tokens{"a", " b ", "c"}));
  EXPECT_EQ(decode(R"({"type":"Strip","content":"▁","start":2,"stop":1})", {"▁▁▁a▁▁", "▁b"}), "▁a▁b");
  // Where Rust panics (cuts crossing, or past the token's start) the token becomes empty instead.
  EXPECT_EQ(chain(R"({"type":"Strip","content":" ","start":1,"stop":1})", {" ", ""}), (Tokens{"", ""}));
  EXPECT_EQ(decode(R"({"type":"Replace","pattern":{"String":"▁"},"content":" "})", {"▁Hey", "▁▁you"}), " Hey  you");
  EXPECT_EQ(decode(R"({"type":"Replace","pattern":{"Regex":"x*"},"content":"-"})", {"axxb", ""}), "-a-b-");
}

TEST(HfDecoders, WordPieceBpeCtc) {
  EXPECT_EQ(decode(R"({"type":"WordPiece","prefix":"##","cleanup":true})",
                   {"I", "don", "##'", "##t", "do", "not", "like", "it", ".", "you", "'", "re"}),
            "I don't do not like it. you ' re");
  EXPECT_EQ(decode(R"({"type":"WordPiece","prefix":"##","cleanup":false})", {"un", "##aff", "##able", "!"}),
            "unaffable !");
  EXPECT_EQ(chain(R"({"type":"BPEDecoder","suffix":"</w>"})", {"hel", "lo</w>", "wor", "ld</w>"}),
            (Tokens{"hel", "lo ", "wor", "ld"}));
  EXPECT_EQ(chain(R"({"type":"BPEDecoder","suffix":"</w>"})", {}), Tokens{});
  EXPECT_EQ(decode(R"({"type":"CTC","pad_token":"<pad>","word_delimiter_token":"|","cleanup":true})",
                   {"<pad>", "h", "h", "e", "<pad>", "l", "l", "<pad>", "l", "o", "|", "|", "w", "o", "r", "l", "d",
                    "<pad>"}),
            "hello world");
}

TEST(HfDecoders, Sequence) {
  // Llama 2's decoder.
  const char* spec = R"({"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},
      {"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})";
  EXPECT_EQ(chain(spec, {"▁Hi", "<0xE2>", "<0x9C>", "<0x93>", "▁there"}), Tokens{"Hi✓ there"});
  EXPECT_EQ(chain(R"({"type":"Sequence","decoders":[]})", {"a", "b"}), (Tokens{"a", "b"}));
}

TEST(HfDecoders, NullIsNoDecoder) {
  EXPECT_EQ(make_decoder(json(nullptr), JsonContext{"tokenizer.json", "$.decoder"}), nullptr);
}

TEST(HfDecoders, ErrorsNameTheJsonPath) {
  EXPECT_EQ(error_of(R"({"type":"Bogus"})"), "tokenizer.json: $.decoder.type: unknown decoder type \"Bogus\"");
  EXPECT_EQ(error_of(R"({"type":"Sequence","decoders":[{"type":"Fuse"},{"type":"X"}]})"),
            "tokenizer.json: $.decoder.decoders[1].type: unknown decoder type \"X\"");
  EXPECT_EQ(error_of(R"({"type":"Sequence","decoders":{}})"),
            "tokenizer.json: $.decoder.decoders: expected an array, got an object");
  EXPECT_EQ(error_of(R"({"type":"ByteLevel","add_prefix_space":true})"),
            "tokenizer.json: $.decoder: missing field \"trim_offsets\"");
  EXPECT_EQ(error_of(R"({"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":null})"),
            "tokenizer.json: $.decoder.use_regex: expected a boolean, got null");
  EXPECT_EQ(error_of(R"({"type":"Metaspace"})"), "tokenizer.json: $.decoder: missing field \"replacement\"");
  EXPECT_EQ(error_of(R"({"type":"Metaspace","replacement":"ab"})"),
            "tokenizer.json: $.decoder.replacement: expected a single character, got \"ab\"");
  EXPECT_EQ(error_of(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"First"})"),
            "tokenizer.json: $.decoder.prepend_scheme: unknown prepend_scheme \"First\", expected first, never or "
            "always");
  EXPECT_EQ(error_of(R"({"type":"Metaspace","replacement":"▁","add_prefix_space":false})"),
            "tokenizer.json: $.decoder.add_prefix_space: add_prefix_space does not match declared prepend_scheme");
  EXPECT_EQ(error_of(R"({"type":"Strip","content":" ","start":-1,"stop":0})"),
            "tokenizer.json: $.decoder.start: expected a non-negative integer, got -1");
  EXPECT_EQ(error_of(R"({"type":"Strip","content":" ","start":1})"),
            "tokenizer.json: $.decoder: missing field \"stop\"");
  EXPECT_EQ(error_of(R"({"type":"WordPiece","prefix":"##","cleanup":1})"),
            "tokenizer.json: $.decoder.cleanup: expected a boolean, got an integer");
  EXPECT_EQ(error_of(R"({"type":"CTC","pad_token":"<pad>","cleanup":true})"),
            "tokenizer.json: $.decoder: missing field \"word_delimiter_token\"");
  EXPECT_EQ(error_of(R"({"type":"Replace","pattern":{"String":"a","Regex":"b"},"content":""})"),
            "tokenizer.json: $.decoder.pattern: expected {\"String\": ...} or {\"Regex\": ...}");
  EXPECT_EQ(error_of(R"({"type":"BPEDecoder"})"), "tokenizer.json: $.decoder: missing field \"suffix\"");
  EXPECT_EQ(error_of(R"("Fuse")"), "tokenizer.json: $.decoder: expected an object, got a string");
}

}  // namespace
}  // namespace prefopt::data::hf
