// Tests of HFTokenizer's own pipeline on small hand-written tokenizer.json files: added tokens (leftmost-longest,
// special vs normalized, single_word, lstrip / rstrip, as Hugging Face's added_vocabulary tests document them),
// the post-processors, offsets, decode with and without special tokens, batch encoding, the folder files
// (tokenizer_config.json, chat_template.jinja, save_pretrained) and every loading error. The components themselves
// are tested in hf_{normalizers,pre_tokenizers,models,decoders}_test.cpp; the whole against the Rust library in
// tests/python/test_hf_tokenizer.py.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <prefopt/data/hf_tokenizer.h>
#include "support/expect_error.h"
#include "support/temp_files.h"

namespace prefopt::data {
namespace {

using testing::expect_error;
using testing::TempDir;

// A BPE over single characters with the merges a b -> ab and ab c -> abc; spaces are their own token.
std::string tokenizer_json(const std::string& added_tokens = "[]", const std::string& normalizer = "null",
                           const std::string& post_processor = "null",
                           const std::string& merges = R"(["a b", "ab c"])") {
  return R"({"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": )" + added_tokens + R"(,
  "normalizer": )" + normalizer + R"(,
  "pre_tokenizer": {"type": "WhitespaceSplit"},
  "post_processor": )" + post_processor + R"(,
  "decoder": null,
  "model": {"type": "BPE", "dropout": null, "unk_token": "?", "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": {"?": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "abc": 5, "<s>": 6, "</s>": 7, "x": 8, "y": 9,
                      "m": 10, "k": 11},
            "merges": )" + merges + "}}";
}

std::vector<int64_t> ids(std::initializer_list<int64_t> l) { return l; }

TEST(HFTokenizer, EncodesThroughTheModelWithoutSpecialTokens) {
  const auto tok = HFTokenizer::from_json_string(tokenizer_json());
  EXPECT_EQ(tok.encode("abc ab a"), ids({5, 4, 1}));
  EXPECT_EQ(tok.encode(""), ids({}));
  EXPECT_EQ(tok.vocab_size(), 12);
  EXPECT_EQ(tok.token_to_id("abc"), std::optional<int64_t>(5));
  EXPECT_EQ(tok.id_to_token(4), std::optional<std::string>("ab"));
  EXPECT_EQ(tok.id_to_token(99), std::nullopt);
  EXPECT_FALSE(tok.bos_id().has_value());  // tokenizer.json alone names no BOS
  // Merges may also be written as pairs (tokenizers >= 0.20).
  const auto pairs = HFTokenizer::from_json_string(tokenizer_json("[]", "null", "null", R"([["a", "b"], ["ab", "c"]])"));
  EXPECT_EQ(pairs.encode("abc ab a"), ids({5, 4, 1}));
}

TEST(HFTokenizer, AddedTokensSplitTheTextLeftmostLongest) {
  const auto tok = HFTokenizer::from_json_string(tokenizer_json(R"([
    {"id": 12, "content": "<|x|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false,
     "special": true},
    {"id": 13, "content": "<|x|>y", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false,
     "special": true}])"));
  // "<|x|>y" is longer than "<|x|>" at the same position: it wins.
  EXPECT_EQ(tok.encode("ab<|x|>yab<|x|>c"), ids({4, 13, 4, 12, 3}));
  EXPECT_EQ(tok.vocab_size(), 14);
  EXPECT_TRUE(tok.is_special(12));
  EXPECT_FALSE(tok.is_special(4));
}

TEST(HFTokenizer, SingleWordAndStripFlagsFollowHuggingFace) {
  // As Hugging Face's own test: "<mask>" single_word matches only between non-word characters.
  const auto tok = HFTokenizer::from_json_string(tokenizer_json(R"([
    {"id": 12, "content": "<mask>", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false,
     "special": false}])"));
  const Encoding e = tok.encode_with_offsets("<mask> a <mask>b <mask>", false);
  // "<mask>b" is not a single word: its characters go through the model (unknown ones become "?").
  std::vector<std::string> expected = {"<mask>", "a", "?", "m", "a", "?", "k", "?", "b", "<mask>"};
  EXPECT_EQ(e.tokens, expected);
  const auto strip = HFTokenizer::from_json_string(tokenizer_json(R"([
    {"id": 12, "content": "<m>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false,
     "special": false}])"));
  const Encoding s = strip.encode_with_offsets("ab  <m>\tc", false);
  EXPECT_EQ(s.ids, ids({4, 12, 3}));
  // lstrip / rstrip: the token's offsets cover the spaces it swallowed.
  EXPECT_EQ(s.offsets[1], (std::pair<std::size_t, std::size_t>(2, 8)));
}

TEST(HFTokenizer, NormalizedAddedTokensMatchTheNormalizedText) {
  const auto tok = HFTokenizer::from_json_string(
      tokenizer_json(R"([{"id": 12, "content": "XY", "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": true, "special": false}])",
                     R"({"type": "Lowercase"})"));
  // The text "Xy" lowercases to "xy", which is the normalized content of "XY".
  EXPECT_EQ(tok.encode("ab Xy"), ids({4, 12}));
}

TEST(HFTokenizer, TemplatePostProcessorAddsSpecialTokensOnRequest) {
  const auto tok = HFTokenizer::from_json_string(tokenizer_json(
      R"([{"id": 6, "content": "<s>", "special": true, "normalized": false},
          {"id": 7, "content": "</s>", "special": true, "normalized": false}])",
      "null",
      R"({"type": "TemplateProcessing",
          "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}],
          "pair": [],
          "special_tokens": {"<s>": {"id": "<s>", "ids": [6], "tokens": ["<s>"]},
                             "</s>": {"id": "</s>", "ids": [7], "tokens": ["</s>"]}}})"));
  EXPECT_EQ(tok.encode("ab", true), ids({6, 4, 7}));
  EXPECT_EQ(tok.encode("ab", false), ids({4}));
  EXPECT_EQ(tok.encode("ab"), ids({4}));  // the Tokenizer interface never adds special tokens
  const Encoding e = tok.encode_with_offsets("ab", true);
  EXPECT_EQ(e.offsets.front(), (std::pair<std::size_t, std::size_t>(0, 0)));
  EXPECT_EQ(e.offsets[1], (std::pair<std::size_t, std::size_t>(0, 2)));
  // No decoder: tokens joined by spaces, as the Rust library does; special tokens dropped on request.
  EXPECT_EQ(tok.decode({6, 4, 3, 7}, false), "<s> ab c </s>");
  EXPECT_EQ(tok.decode({6, 4, 3, 7}, true), "ab c");
}

TEST(HFTokenizer, BatchEncodingEqualsOneByOneOnAnyThreadCount) {
  const auto tok = HFTokenizer::from_json_string(tokenizer_json());
  std::vector<std::string> texts;
  for (int i = 0; i < 100; ++i) texts.push_back(std::string(i % 7, 'a') + " abc" + std::string(i % 3, 'b'));
  std::vector<std::vector<int64_t>> one_by_one;
  for (const auto& t : texts) one_by_one.push_back(tok.encode(t, true));
  for (int64_t threads : {0, 1, 2, 5}) EXPECT_EQ(tok.encode_batch(texts, true, threads), one_by_one);
  expect_error([&] { tok.encode_batch(texts, true, -1); }, "num_threads must be >= 0");
  texts[57] = "bad \xFF";
  expect_error([&] { tok.encode_batch(texts, true, 3); }, "not valid UTF-8 at byte 4");
}

TEST(HFTokenizer, InvalidUtf8AndUnknownIdsAreErrors) {
  const auto tok = HFTokenizer::from_json_string(tokenizer_json());
  expect_error([&] { tok.encode("ab\xC3"); }, "not valid UTF-8 at byte 2");
  expect_error([&] { tok.encode("\xED\xA0\x80"); }, "not valid UTF-8 at byte 0");  // a surrogate
  expect_error([&] { tok.decode({1, 12}, false); }, "ids[1] = 12 is not a token");
  expect_error([&] { tok.decode({-1}, false); }, "ids[0] = -1 is not a token");
}

TEST(HFTokenizer, LoadingErrorsNameTheFileAndJsonPath) {
  expect_error([] { HFTokenizer::from_json_string("{", "t.json"); }, "t.json: invalid JSON");
  expect_error([] { HFTokenizer::from_json_string("[]", "t.json"); }, "t.json: $: expected a JSON object");
  expect_error([] { HFTokenizer::from_json_string("{}", "t.json"); }, "t.json: $.model: missing");
  std::string bad_added = tokenizer_json(R"([{"id": 12, "content": ""}])");
  expect_error([&] { HFTokenizer::from_json_string(bad_added, "t.json"); }, "$.added_tokens[0].content");
  std::string duplicate = tokenizer_json(R"([{"id": 12, "content": "q"}, {"id": 12, "content": "r"}])");
  expect_error([&] { HFTokenizer::from_json_string(duplicate, "t.json"); }, "duplicate added-token id 12");
  std::string bad_post = tokenizer_json("[]", "null", R"({"type": "NoSuch"})");
  expect_error([&] { HFTokenizer::from_json_string(bad_post, "t.json"); },
               "t.json: $.post_processor.type: unknown post-processor type \"NoSuch\"");
  std::string bad_template = tokenizer_json("[]", "null", R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}], "special_tokens": {}})");
  expect_error([&] { HFTokenizer::from_json_string(bad_template, "t.json"); },
               "$.post_processor.single[0].SpecialToken.id: \"<s>\" is not in the template's special_tokens");
  expect_error([] { HFTokenizer::from_file("/nonexistent/tokenizer.json"); }, "cannot be opened");
}

TEST(HFTokenizer, FolderReadsSpecialTokensAndChatTemplate) {
  TempDir dir;
  dir.write("tokenizer.json", tokenizer_json(R"([{"id": 6, "content": "<s>", "special": true, "normalized": false},
      {"id": 7, "content": "</s>", "special": true, "normalized": false}])"));
  dir.write("tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": {"content": "</s>", "special": true},
      "chat_template": "{% for m in messages %}{{ bos_token }}{{ m['role'] }}:{{ m['content'] }}{{ eos_token }}{% endfor %}"})");
  const auto tok = HFTokenizer::from_pretrained(dir.path());
  EXPECT_EQ(tok.bos_id(), std::optional<int64_t>(6));
  EXPECT_EQ(tok.eos_id(), std::optional<int64_t>(7));
  EXPECT_EQ(tok.pad_id(), 7);  // no pad_token: EOS pads
  EXPECT_TRUE(tok.has_chat_template());
  EXPECT_EQ(tok.apply_chat_template({{"user", "ab c"}}, false, false), "<s>user:ab c</s>");
  // chat_template.jinja (what transformers 5 writes) takes precedence over tokenizer_config.json's field.
  dir.write("chat_template.jinja", "{{ messages[0]['content'] }}!");
  EXPECT_EQ(HFTokenizer::from_pretrained(dir.path()).apply_chat_template({{"user", "x"}}, false, false), "x!");
}

TEST(HFTokenizer, SavePretrainedRoundTrips) {
  TempDir dir;
  dir.write("tokenizer.json", tokenizer_json(R"([{"id": 6, "content": "<s>", "special": true, "normalized": false}])"));
  dir.write("tokenizer_config.json", R"({"bos_token": "<s>", "model_max_length": 1000000000000000019884624838656,
      "chat_template": [{"name": "default", "template": "A{{ messages|length }}"}, {"name": "tool_use", "template": "T"}]})");
  const auto tok = HFTokenizer::from_pretrained(dir.path());
  EXPECT_EQ(tok.chat_template_names(), (std::vector<std::string>{"default", "tool_use"}));
  const std::string copy = dir.path() + "/copy";
  tok.save_pretrained(copy);
  const auto again = HFTokenizer::from_pretrained(copy);
  EXPECT_EQ(again.encode("abc ab", true), tok.encode("abc ab", true));
  EXPECT_EQ(again.bos_id(), std::optional<int64_t>(6));
  EXPECT_EQ(again.apply_chat_template({{"user", "x"}, {"assistant", "y"}}, false, false), "A2");
  ChatTemplateInputs inputs;
  inputs.messages_json = R"([{"role": "user", "content": "x"}])";
  EXPECT_EQ(again.apply_chat_template(inputs, "tool_use").text, "T");
  expect_error([&] { again.apply_chat_template(inputs, "nope"); }, "no chat template named \"nope\"");
  std::ifstream saved(copy + "/tokenizer.json");
  std::stringstream text;
  text << saved.rdbuf();
  EXPECT_NE(text.str().find("\"merges\""), std::string::npos);
}

TEST(HFTokenizer, FolderErrorsNameTheFileAndField) {
  TempDir dir;
  expect_error([&] { HFTokenizer::from_pretrained(dir.path()); }, "has no tokenizer.json");
  expect_error([&] { HFTokenizer::from_pretrained(dir.path() + "/missing"); }, "is not a folder");
  dir.write("tokenizer.json", tokenizer_json());
  dir.write("tokenizer_config.json", R"({"eos_token": "<|end|>"})");
  expect_error([&] { HFTokenizer::from_pretrained(dir.path()); },
               "tokenizer_config.json: $.eos_token: \"<|end|>\" is not a token of");
  dir.write("tokenizer_config.json", R"({"eos_token": 5})");
  expect_error([&] { HFTokenizer::from_pretrained(dir.path()); }, "$.eos_token: expected a string or {\"content\"");
  dir.write("tokenizer_config.json", R"({"chat_template": 3})");
  expect_error([&] { HFTokenizer::from_pretrained(dir.path()); }, "$.chat_template: expected a string or a list");
  dir.write("tokenizer_config.json", R"({"chat_template": "{% for %}"})");
  expect_error([&] { HFTokenizer::from_pretrained(dir.path()); }, "chat_template");
  dir.write("tokenizer_config.json", "{");
  expect_error([&] { HFTokenizer::from_pretrained(dir.path()); }, "tokenizer_config.json: invalid JSON");
}

}  // namespace
}  // namespace prefopt::data
