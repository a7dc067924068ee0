// Tests of the JSONL readers on small fixture files written to a temporary directory: every record format (plain,
// conversational, pre-tokenized; pairs, DOVE pairs, ranked lists, KTO), the chat template exactly as documented,
// UTF-8 kept byte for byte, line numbering across blank lines, the streaming form, every malformed case with its
// message (file, 1-based line, field), and skip mode with its count.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <prefopt/data/jsonl.h>
#include <prefopt/data/records.h>
#include "support/expect_error.h"
#include "support/temp_files.h"

namespace prefopt::data {
namespace {

using testing::expect_error;
using testing::TempDir;

// ---- the chat template -----------------------------------------------------------------------------------------

TEST(ChatTemplate, RendersExactlyAsDocumented) {
  const std::vector<Message> prompt = {{"system", "Be brief."}, {"user", "2+2?"}};
  const std::vector<Message> completion = {{"assistant", "4"}};
  EXPECT_EQ(render_prompt(prompt), "<|system|>\nBe brief.\n<|user|>\n2+2?\n<|assistant|>\n");
  EXPECT_EQ(render_completion(completion), "4\n");
  EXPECT_EQ(render_prompt({}), "<|assistant|>\n");
  EXPECT_EQ(render_conversation({{"user", ""}}), "<|user|>\n\n");
  // A multi-turn completion: later messages get their headers.
  const std::vector<Message> turns = {{"assistant", "4"}, {"user", "and 3+3?"}, {"assistant", "6"}};
  EXPECT_EQ(render_completion(turns), "4\n<|user|>\nand 3+3?\n<|assistant|>\n6\n");
  // prompt + completion renders as the whole conversation.
  std::vector<Message> all = prompt;
  all.insert(all.end(), turns.begin(), turns.end());
  EXPECT_EQ(render_prompt(prompt) + render_completion(turns), render_conversation(all));
}

TEST(ChatTemplate, CompletionMustStartWithTheAssistant) {
  expect_error([] { render_completion({}); }, "render_completion: a completion needs at least one message, got none");
  expect_error(
      [] {
        render_completion({{"user", "x"}});
      },
      "render_completion: a completion must start with an \"assistant\" message, got \"user\"");
}

TEST(Source, NamesFileAndLine) {
  EXPECT_EQ(to_string(Source{"a/b.jsonl", 7}), "a/b.jsonl:7");
  EXPECT_EQ(to_string(Source{}), "record");
}

// ---- well-formed files -----------------------------------------------------------------------------------------

TEST(ReadPairs, PlainTextWithLineNumbersAcrossBlankLines) {
  TempDir dir;
  const auto path = dir.write("pairs.jsonl",
                              "{\"prompt\": \"2+2=\", \"chosen\": \"4\", \"rejected\": \"5\", \"id\": 17}\n"
                              "\n"
                              "   \t\n"
                              "{\"rejected\": \"b\", \"chosen\": \"a\", \"prompt\": \"\"}\n");
  const auto result = read_pairs(path);
  ASSERT_EQ(result.items.size(), 2u);
  EXPECT_EQ(result.skipped.count, 0);
  const auto& first = result.items[0];
  EXPECT_EQ(first.prompt.kind, Segment::Kind::Text);
  EXPECT_EQ(first.prompt.text, "2+2=");
  EXPECT_EQ(first.chosen.text, "4");
  EXPECT_EQ(first.rejected.text, "5");
  EXPECT_EQ(first.source.file, path);
  EXPECT_EQ(first.source.line, 1);
  EXPECT_EQ(result.items[1].prompt.text, "");  // an empty prompt is allowed
  EXPECT_EQ(result.items[1].source.line, 4);
}

TEST(ReadPairs, KeepsUtf8BytesAndHandlesBomAndCrlf) {
  TempDir dir;
  // A BOM, CRLF line ends, raw UTF-8 and a \u escape (decoded to its UTF-8 bytes).
  const auto path = dir.write("utf8.jsonl",
                              "\xEF\xBB\xBF{\"prompt\": \"cr\xC3\xA8me \xF0\x9F\x98\x80\", \"chosen\": \"caf\\u00e9\", "
                              "\"rejected\": \"tab\\there\\nline\"}\r\n"
                              "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}\r\n");
  const auto result = read_pairs(path);
  ASSERT_EQ(result.items.size(), 2u);
  EXPECT_EQ(result.items[0].prompt.text, "cr\xC3\xA8me \xF0\x9F\x98\x80");
  EXPECT_EQ(result.items[0].chosen.text, "caf\xC3\xA9");
  EXPECT_EQ(result.items[0].rejected.text, "tab\there\nline");
  EXPECT_EQ(result.items[1].rejected.text, "r");
}

TEST(ReadPairs, Conversational) {
  TempDir dir;
  const auto path = dir.write(
      "chat.jsonl",
      R"({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}], )"
      R"("chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]})"
      "\n");
  const auto result = read_pairs(path);
  ASSERT_EQ(result.items.size(), 1u);
  const auto& r = result.items[0];
  ASSERT_EQ(r.prompt.kind, Segment::Kind::Messages);
  ASSERT_EQ(r.prompt.messages.size(), 2u);
  EXPECT_EQ(r.prompt.messages[1].role, "user");
  EXPECT_EQ(r.prompt.messages[1].content, "2+2?");
  ASSERT_EQ(r.chosen.kind, Segment::Kind::Messages);
  EXPECT_EQ(render_prompt(r.prompt.messages), "<|system|>\nBe brief.\n<|user|>\n2+2?\n<|assistant|>\n");
  EXPECT_EQ(render_completion(r.chosen.messages), "4\n");
  EXPECT_EQ(render_completion(r.rejected.messages), "5\n");
}

TEST(ReadPairs, ImplicitPromptIsExtractedAsTrlDoes) {
  TempDir dir;
  // Conversations: the shared leading messages. Strings: the shared leading characters (not bytes: "é" and "è"
  // share their first UTF-8 byte), a space before the first difference staying with the completions; when one
  // is a prefix of the other the prompt stops one character short of the shorter, as TRL's loop leaves it.
  const auto path = dir.write(
      "implicit.jsonl",
      R"({"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], )"
      R"("rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]})"
      "\n"
      R"({"chosen": "The sky is blue", "rejected": "The sky is green"})"
      "\n"
      R"({"chosen": "caf\u00e9 ok", "rejected": "caf\u00e8 no"})"
      "\n"
      R"({"chosen": "abc", "rejected": "abcd"})"
      "\n");
  const auto items = read_pairs(path).items;
  ASSERT_EQ(items.size(), 4u);
  ASSERT_EQ(items[0].prompt.kind, Segment::Kind::Messages);
  ASSERT_EQ(items[0].prompt.messages.size(), 1u);
  EXPECT_EQ(items[0].prompt.messages[0].content, "2+2?");
  EXPECT_EQ(items[0].chosen.messages[0].content, "4");
  EXPECT_EQ(items[1].prompt.text, "The sky is");
  EXPECT_EQ(items[1].chosen.text, " blue");
  EXPECT_EQ(items[1].rejected.text, " green");
  EXPECT_EQ(items[2].prompt.text, "caf");
  EXPECT_EQ(items[2].chosen.text, "\xC3\xA9 ok");
  EXPECT_EQ(items[3].prompt.text, "ab");
  EXPECT_EQ(items[3].chosen.text, "c");
  EXPECT_EQ(items[3].rejected.text, "cd");
  // Nothing to extract from token ids, or from a string and a conversation.
  const auto bad = dir.write("bad.jsonl", R"({"chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]})"
                                          "\n");
  expect_error([&] { read_pairs(bad); }, "bad.jsonl:1: field \"prompt\": missing, and it can be extracted");
}

TEST(ReadCompletions, LanguageModellingFormatsOfTrl) {
  TempDir dir;
  const auto path = dir.write("lm.jsonl", R"({"text": "Once upon a time"})"
                                          "\n"
                                          R"({"messages": [{"role": "user", "content": "hi"}, )"
                                          R"({"role": "assistant", "content": "hello"}]})"
                                          "\n"
                                          R"({"prompt": "p", "completion": "c"})"
                                          "\n");
  const auto items = read_completions(path).items;
  ASSERT_EQ(items.size(), 3u);
  EXPECT_TRUE(items[0].language_modeling);
  EXPECT_EQ(items[0].completion.text, "Once upon a time");
  EXPECT_TRUE(items[1].language_modeling);
  ASSERT_EQ(items[1].completion.messages.size(), 2u);
  EXPECT_EQ(items[1].completion.messages[0].role, "user");
  EXPECT_FALSE(items[2].language_modeling);
  const auto mixed = dir.write("mixed.jsonl", R"({"text": "a", "completion": "b"})"
                                              "\n");
  expect_error([&] { read_completions(mixed); }, "mixed.jsonl:1: field \"completion\": a line holds");
  const auto empty = dir.write("empty.jsonl", R"({"text": ""})"
                                              "\n");
  expect_error([&] { read_completions(empty); }, "empty.jsonl:1: field \"text\": empty text");
}

TEST(ReadPairs, PreTokenizedBothSpellingsAndMixedWithText) {
  TempDir dir;
  const auto path = dir.write("ids.jsonl", R"({"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_input_ids": [4, 5]})"
                                           "\n"
                                           R"({"prompt": "text prompt", "chosen_input_ids": [9], "rejected": "text"})"
                                           "\n");
  const auto result = read_pairs(path);
  ASSERT_EQ(result.items.size(), 2u);
  const auto& a = result.items[0];
  EXPECT_EQ(a.prompt.kind, Segment::Kind::Ids);
  EXPECT_EQ(a.prompt.ids, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(a.chosen.ids, (std::vector<int64_t>{3}));
  EXPECT_EQ(a.rejected.ids, (std::vector<int64_t>{4, 5}));
  const auto& b = result.items[1];
  EXPECT_EQ(b.prompt.kind, Segment::Kind::Text);
  EXPECT_EQ(b.chosen.kind, Segment::Kind::Ids);
  EXPECT_EQ(b.chosen.ids, (std::vector<int64_t>{9}));
  EXPECT_EQ(b.rejected.text, "text");
}

TEST(ReadJointPairs, TwoPromptsAllForms) {
  TempDir dir;
  const auto path = dir.write(
      "dove.jsonl",
      R"({"chosen_prompt": "x1", "chosen": "y1", "rejected_prompt": "x2", "rejected": "y2"})"
      "\n"
      R"({"chosen_prompt_ids": [1], "chosen_ids": [2, 3], "rejected_prompt_ids": [4], "rejected_ids": [5]})"
      "\n"
      R"({"chosen_prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b"}], )"
      R"("rejected_prompt": [{"role": "user", "content": "c"}], "rejected": [{"role": "assistant", "content": "d"}]})"
      "\n");
  const auto result = read_joint_pairs(path);
  ASSERT_EQ(result.items.size(), 3u);
  EXPECT_EQ(result.items[0].chosen_prompt.text, "x1");
  EXPECT_EQ(result.items[0].rejected_prompt.text, "x2");
  EXPECT_EQ(result.items[0].rejected.text, "y2");
  EXPECT_EQ(result.items[1].chosen.ids, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(result.items[1].rejected_prompt.ids, (std::vector<int64_t>{4}));
  EXPECT_EQ(result.items[2].rejected_prompt.messages[0].content, "c");
  EXPECT_EQ(result.items[2].rejected.messages[0].content, "d");
}

TEST(ReadLists, ScoresRanksConversationsAndIds) {
  TempDir dir;
  const auto path = dir.write(
      "lists.jsonl",
      R"({"prompt": "q", "responses": ["a", "b", "c"], "scores": [0.9, -1, 2]})"
      "\n"
      R"({"prompt": "q", "responses": ["a", "b"], "ranks": [2, 1]})"
      "\n"
      R"({"prompt": [{"role": "user", "content": "q"}], "responses": [[{"role": "assistant", "content": "a"}]], )"
      R"("scores": [1]})"
      "\n"
      R"({"prompt_ids": [1], "responses_ids": [[2], [3, 4]], "ranks": [1, 2]})"
      "\n");
  const auto result = read_lists(path);
  ASSERT_EQ(result.items.size(), 4u);
  const auto& a = result.items[0];
  EXPECT_EQ(a.label_kind, ListLabelKind::Scores);
  EXPECT_EQ(a.labels, (std::vector<double>{0.9, -1, 2}));
  ASSERT_EQ(a.responses.size(), 3u);
  EXPECT_EQ(a.responses[2].text, "c");
  EXPECT_EQ(result.items[1].label_kind, ListLabelKind::Ranks);
  EXPECT_EQ(result.items[1].labels, (std::vector<double>{2, 1}));
  EXPECT_EQ(result.items[2].responses[0].kind, Segment::Kind::Messages);
  EXPECT_EQ(result.items[2].responses[0].messages[0].content, "a");
  EXPECT_EQ(result.items[3].responses[1].ids, (std::vector<int64_t>{3, 4}));
}

TEST(ReadUnpaired, LabelsAndForms) {
  TempDir dir;
  const auto path = dir.write("kto.jsonl", R"({"prompt": "p", "completion": "good", "label": true})"
                                           "\n"
                                           R"({"prompt": "p", "completion_ids": [7, 8], "label": false})"
                                           "\n");
  const auto result = read_unpaired(path);
  ASSERT_EQ(result.items.size(), 2u);
  EXPECT_TRUE(result.items[0].label);
  EXPECT_EQ(result.items[0].completion.text, "good");
  EXPECT_FALSE(result.items[1].label);
  EXPECT_EQ(result.items[1].completion.ids, (std::vector<int64_t>{7, 8}));
}

TEST(ReadCompletions, FormsAndErrorsNameTheLine) {
  TempDir dir;
  const auto path = dir.write("sft.jsonl", R"({"prompt": "p", "completion": "c"})"
                                           "\n"
                                           R"({"prompt": [{"role": "user", "content": "hi"}], )"
                                           R"("completion": [{"role": "assistant", "content": "yo"}]})"
                                           "\n"
                                           R"({"prompt_ids": [1], "completion_ids": [2, 3]})"
                                           "\n");
  const auto result = read_completions(path);
  ASSERT_EQ(result.items.size(), 3u);
  EXPECT_EQ(result.items[0].completion.text, "c");
  EXPECT_EQ(result.items[1].prompt.messages.at(0).content, "hi");
  EXPECT_EQ(result.items[2].completion.ids, (std::vector<int64_t>{2, 3}));
  const auto bad = dir.write("bad.jsonl", R"({"prompt": "p", "completion": "c"})"
                                          "\n"
                                          R"({"prompt": "p"})"
                                          "\n");
  expect_error([&] { read_completions(bad); }, "bad.jsonl:2: field \"completion\": missing");
}

TEST(ReadPairs, StreamingSinkSeesEveryRecordInOrder) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 50; ++i) {
    text += R"({"prompt": "p)" + std::to_string(i) + R"(", "chosen": "c", "rejected": "r"})" + "\n";
  }
  const auto path = dir.write("many.jsonl", text);
  std::vector<std::string> prompts;
  const auto stats = read_pairs(path, [&](PairRecord&& r) { prompts.push_back(r.prompt.text); });
  EXPECT_EQ(stats.records, 50);
  EXPECT_EQ(stats.skipped.count, 0);
  ASSERT_EQ(prompts.size(), 50u);
  EXPECT_EQ(prompts[0], "p0");
  EXPECT_EQ(prompts[49], "p49");
}

// ---- malformed files -------------------------------------------------------------------------------------------

// Writes `line` as line 2 of a file after a good line and checks the error of reading it.
void expect_pair_line_error(const std::string& line, const std::string& field_and_what) {
  TempDir dir;
  const auto path = dir.write("bad.jsonl", R"({"prompt": "p", "chosen": "c", "rejected": "r"})"
                                           "\n" +
                                               line + "\n");
  expect_error([&] { read_pairs(path); }, path + ":2: " + field_and_what);
}

TEST(ReadPairsErrors, BadJson) {
  expect_pair_line_error(R"({"prompt": "p", "chosen": "c", "rejected": )",
                         "invalid JSON at byte 44: syntax error while parsing value - unexpected end of input");
  expect_pair_line_error(R"({"prompt": "p" "chosen": "c"})",
                         "invalid JSON at byte 23: syntax error while parsing object - unexpected string literal");
  expect_pair_line_error("{\"prompt\": \"\xFF\", \"chosen\": \"c\", \"rejected\": \"r\"}", "invalid JSON at byte");
}

TEST(ReadPairsErrors, NotAnObject) {
  expect_pair_line_error(R"(["p", "c", "r"])", "expected a JSON object per line, got list");
  expect_pair_line_error("42", "expected a JSON object per line, got number");
}

TEST(ReadPairsErrors, MissingField) {
  expect_pair_line_error(R"({"prompt": "p", "chosen": "c"})",
                         "field \"rejected\": missing (give \"rejected\" as a string or a list of messages, or "
                         "\"rejected_ids\" as a list of token ids)");
  expect_pair_line_error(R"({"chosen_ids": [1], "rejected": "r"})", "field \"prompt\": missing");
}

TEST(ReadPairsErrors, WrongType) {
  expect_pair_line_error(R"({"prompt": "p", "chosen": 4, "rejected": "r"})",
                         "field \"chosen\": expected a string or a list of messages, got number");
  expect_pair_line_error(R"({"prompt": null, "chosen": "c", "rejected": "r"})",
                         "field \"prompt\": expected a string or a list of messages, got null");
  expect_pair_line_error(R"({"prompt": {"text": "p"}, "chosen": "c", "rejected": "r"})",
                         "field \"prompt\": expected a string or a list of messages, got object");
}

TEST(ReadPairs, AnAssistantTurnWithEmptyContentIsACompletion) {
  // The chat template still renders the turn (its header and end-of-turn tokens), as TRL trains on it.
  TempDir dir;
  const auto path = dir.write("empty.jsonl", R"({"prompt": [{"role": "user", "content": "q"}], )"
                                             R"("chosen": [{"role": "assistant", "content": "a"}], )"
                                             R"("rejected": [{"role": "assistant", "content": ""}]})"
                                             "\n");
  const auto items = read_pairs(path).items;
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].rejected.messages[0].content, "");
}

TEST(ReadPairsErrors, EmptyCompletion) {
  expect_pair_line_error(R"({"prompt": "p", "chosen": "", "rejected": "r"})", "field \"chosen\": empty completion");
  expect_pair_line_error(R"({"prompt": [], "chosen": [{"role": "assistant", "content": "c"}], "rejected": []})",
                         "field \"rejected\": empty completion (a list with no message)");
  expect_pair_line_error(R"({"prompt": "p", "chosen_ids": [], "rejected": "r"})",
                         "field \"chosen_ids\": empty completion");
}

TEST(ReadPairsErrors, MalformedMessages) {
  const std::string ok = R"("rejected": [{"role": "assistant", "content": "r"}])";
  expect_pair_line_error(
      R"({"prompt": [{"content": "q"}], "chosen": [{"role": "assistant", "content": "c"}], )" + ok + "}",
      "field \"prompt[0].role\": missing");
  expect_pair_line_error(
      R"({"prompt": [{"role": "user"}], "chosen": [{"role": "assistant", "content": "c"}], )" + ok + "}",
      "field \"prompt[0].content\": missing");
  expect_pair_line_error(
      R"({"prompt": [{"role": "user", "content": ["q"]}], "chosen": [{"role": "assistant", "content": "c"}], )" + ok +
          "}",
      "field \"prompt[0].content\": expected a string, got list");
  expect_pair_line_error(R"({"prompt": ["q"], "chosen": [{"role": "assistant", "content": "c"}], )" + ok + "}",
                         "field \"prompt[0]\": expected a message {\"role\": ..., \"content\": ...}, got string");
  expect_pair_line_error(
      R"({"prompt": [{"role": "us|>er", "content": "q"}], "chosen": [{"role": "assistant", "content": "c"}], )" + ok +
          "}",
      "field \"prompt[0].role\": expected a non-empty run of ASCII letters, digits, '_' or '-', got \"us|>er\"");
  expect_pair_line_error(
      R"({"prompt": [], "chosen": [{"role": "user", "content": "c"}], )" + ok + "}",
      "field \"chosen[0].role\": a completion must start with an \"assistant\" message, got \"user\"");
  expect_pair_line_error(
      R"({"prompt": [], "chosen": [{"role": "assistant", "content": "c"}, {"role": 3, "content": "x"}], )" + ok + "}",
      "field \"chosen[1].role\": expected a string, got number");
}

TEST(ReadPairsErrors, PlainAndConversationalMixed) {
  expect_pair_line_error(
      R"({"prompt": [{"role": "user", "content": "q"}], "chosen": "c", "rejected": "r"})",
      "field \"chosen\": expected a list of messages, as \"prompt\" is conversational; got a string");
  expect_pair_line_error(R"({"prompt": "q", "chosen": "c", "rejected": [{"role": "assistant", "content": "r"}]})",
                         "field \"rejected\": expected a string, as \"prompt\" is plain text; got a list of messages");
}

TEST(ReadPairsErrors, PreTokenizedFields) {
  expect_pair_line_error(R"({"prompt": "p", "prompt_ids": [1], "chosen": "c", "rejected": "r"})",
                         "field \"prompt\": both \"prompt\" and \"prompt_ids\" are given; give one");
  expect_pair_line_error(R"({"prompt_ids": [1], "prompt_input_ids": [1], "chosen": "c", "rejected": "r"})",
                         "field \"prompt_ids\": both \"prompt_ids\" and \"prompt_input_ids\" are given; give one");
  expect_pair_line_error(R"({"prompt_ids": [1, -3], "chosen": "c", "rejected": "r"})",
                         "field \"prompt_ids\": token id -3 at index 1 is negative");
  expect_pair_line_error(R"({"prompt_ids": [1, 2.5], "chosen": "c", "rejected": "r"})",
                         "field \"prompt_ids\": expected integer token ids, got the number 2.5 at index 1");
  expect_pair_line_error(R"({"prompt_ids": ["1"], "chosen": "c", "rejected": "r"})",
                         "field \"prompt_ids\": expected integer token ids, got string at index 0");
  expect_pair_line_error(R"({"prompt_ids": 1, "chosen": "c", "rejected": "r"})",
                         "field \"prompt_ids\": expected a list of token ids, got number");
  expect_pair_line_error(R"({"prompt_ids": [18446744073709551615], "chosen": "c", "rejected": "r"})",
                         "field \"prompt_ids\": token id 18446744073709551615 at index 0 does not fit in int64");
  expect_pair_line_error(R"({"prompt_input_ids": [], "chosen": "c", "rejected": "r"})",
                         "field \"prompt_input_ids\": empty prompt: nothing would predict the first completion token");
}

TEST(ReadErrors, EmptyMissingAndDirectory) {
  TempDir dir;
  const auto empty = dir.write("empty.jsonl", "");
  expect_error([&] { read_pairs(empty); }, empty + ": no records: the file is empty");
  const auto blank = dir.write("blank.jsonl", "\n  \n\r\n");
  expect_error([&] { read_lists(blank); }, blank + ": no records: the file is empty");
  const auto missing = dir.path() + "/missing.jsonl";
  expect_error([&] { read_unpaired(missing); }, missing + ": cannot open for reading: No such file or directory");
  expect_error([&] { read_joint_pairs(dir.path()); }, dir.path() + ": is a directory, expected a JSONL file");
  expect_error([&] { read_pairs(empty, ReadOptions().max_skip_messages(-1)); },
               "ReadOptions.max_skip_messages must be >= 0, got -1");
}

TEST(ReadErrors, JointPairFields) {
  TempDir dir;
  const auto path = dir.write("dove.jsonl", R"({"chosen_prompt": "x", "chosen": "y", "rejected": "z"})"
                                            "\n");
  expect_error([&] { read_joint_pairs(path); }, path + ":1: field \"rejected_prompt\": missing");
  const auto wrong =
      dir.write("dove2.jsonl", R"({"chosen_prompt": "x", "chosen": "y", "rejected_prompt": 1, "rejected": "z"})"
                               "\n");
  expect_error([&] { read_joint_pairs(wrong); },
               wrong + ":1: field \"rejected_prompt\": expected a string or a list of messages, got number");
}

TEST(ReadErrors, ListFields) {
  TempDir dir;
  const auto check = [&](const std::string& line, const std::string& what) {
    const auto path = dir.write("list.jsonl", line + "\n");
    expect_error([&] { read_lists(path); }, path + ":1: " + what);
  };
  check(R"({"prompt": "q", "responses": ["a"], "scores": [1], "ranks": [1]})",
        "field \"scores\": both \"scores\" and \"ranks\" are given; give one");
  check(R"({"prompt": "q", "responses": ["a"]})",
        "field \"scores\": missing (give \"scores\", higher is better, or \"ranks\", lower is better)");
  check(R"({"prompt": "q", "responses": ["a", "b"], "scores": [1]})",
        "field \"scores\": has 1 entries but \"responses\" has 2");
  check(R"({"prompt": "q", "responses": ["a", "b"], "ranks": [1, "2"]})",
        "field \"ranks[1]\": expected a number, got string");
  check(R"({"prompt": "q", "responses": ["a"], "scores": [true]})",
        "field \"scores[0]\": expected a number, got boolean");
  check(R"({"prompt": "q", "responses": ["a"], "scores": 1})",
        "field \"scores\": expected a list of numbers, got number");
  check(R"({"prompt": "q", "responses": [], "scores": []})",
        "field \"responses\": empty list: a ranked list needs at least one response");
  check(R"({"prompt": "q", "responses": "a", "scores": [1]})",
        "field \"responses\": expected a list of responses, got string");
  check(R"({"prompt": "q", "responses": ["a", ""], "scores": [1, 2]})", "field \"responses[1]\": empty completion");
  check(R"({"prompt": "q", "responses_ids": [[1], []], "scores": [1, 2]})",
        "field \"responses_ids[1]\": empty completion");
  check(R"({"prompt": "q", "scores": [1]})",
        "field \"responses\": missing (give \"responses\" as a list of strings or conversations, or "
        "\"responses_ids\" as a list of token-id lists)");
  check(R"({"prompt": "q", "responses": ["a"], "scores": [1e400]})", "invalid JSON: number overflow parsing '1e400'");
}

TEST(ReadErrors, UnpairedFields) {
  TempDir dir;
  const auto check = [&](const std::string& line, const std::string& what) {
    const auto path = dir.write("kto.jsonl", line + "\n");
    expect_error([&] { read_unpaired(path); }, path + ":1: " + what);
  };
  check(R"({"prompt": "p", "completion": "c"})",
        "field \"label\": missing (true for a desirable completion, false for an undesirable one)");
  check(R"({"prompt": "p", "completion": "c", "label": 1})", "field \"label\": expected a boolean, got number");
  check(R"({"prompt": "p", "completion": "c", "label": "true"})", "field \"label\": expected a boolean, got string");
  check(R"({"prompt": "p", "completion": "", "label": true})", "field \"completion\": empty completion");
  check(R"({"prompt": "p", "label": true})", "field \"completion\": missing");
}

TEST(ReadErrors, DeepNestingAndLongLinesAreNotACrash) {
  TempDir dir;
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const auto nested = dir.write("deep.jsonl", deep + "\n");
  expect_error([&] { read_pairs(nested); }, nested + ":1: expected a JSON object per line, got list");
  const auto unterminated = dir.write("open.jsonl", std::string(200000, '[') + "\n");
  expect_error([&] { read_pairs(unterminated); }, unterminated + ":1: invalid JSON at byte 200001");
  // A 4 MB completion on one line is read whole.
  const std::string big(4 << 20, 'z');
  const auto path = dir.write("big.jsonl", R"({"prompt": "p", "chosen": ")" + big + R"(", "rejected": "r"})" + "\n");
  const auto result = read_pairs(path);
  ASSERT_EQ(result.items.size(), 1u);
  EXPECT_EQ(result.items[0].chosen.text.size(), big.size());
}

// ---- skip mode -------------------------------------------------------------------------------------------------

TEST(ReadSkip, CountsAndReportsSkippedLines) {
  TempDir dir;
  const auto path = dir.write("mixed.jsonl", R"({"prompt": "p1", "chosen": "c", "rejected": "r"})"
                                             "\n"
                                             R"({"prompt": "p2", "chosen": "", "rejected": "r"})"
                                             "\n"
                                             "\n"
                                             R"({"prompt": "p4", "chosen": "c", "rejected": "r"})"
                                             "\n"
                                             "not json\n"
                                             R"({"prompt": "p6", "chosen": "c"})"
                                             "\n"
                                             R"({"prompt": "p7", "chosen": "c", "rejected": "r"})"
                                             "\n");
  expect_error([&] { read_pairs(path); }, path + ":2: field \"chosen\": empty completion");

  const auto result = read_pairs(path, ReadOptions().on_error(kSkip));
  ASSERT_EQ(result.items.size(), 3u);
  EXPECT_EQ(result.items[0].prompt.text, "p1");
  EXPECT_EQ(result.items[1].prompt.text, "p4");
  EXPECT_EQ(result.items[1].source.line, 4);
  EXPECT_EQ(result.items[2].source.line, 7);
  EXPECT_EQ(result.skipped.count, 3);
  ASSERT_EQ(result.skipped.messages.size(), 3u);
  EXPECT_EQ(result.skipped.messages[0], path + ":2: field \"chosen\": empty completion");
  EXPECT_EQ(result.skipped.messages[1].rfind(
                path + ":5: invalid JSON at byte 2: syntax error while parsing value - invalid literal", 0),
            0u)
      << result.skipped.messages[1];
  EXPECT_EQ(result.skipped.messages[2].rfind(path + ":6: field \"rejected\": missing", 0), 0u)
      << result.skipped.messages[2];

  const auto capped = read_pairs(path, ReadOptions().on_error(kSkip).max_skip_messages(1));
  EXPECT_EQ(capped.skipped.count, 3);
  EXPECT_EQ(capped.skipped.messages.size(), 1u);

  int64_t seen = 0;
  const auto stats = read_pairs(
      path, [&](PairRecord&&) { ++seen; }, ReadOptions().on_error(kSkip));
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(stats.records, 3);
  EXPECT_EQ(stats.skipped.count, 3);
}

TEST(ReadSkip, AllLinesSkippedIsAnError) {
  TempDir dir;
  const auto path = dir.write("bad.jsonl", "[1]\n{\"prompt\": 1}\n");
  expect_error([&] { read_pairs(path, ReadOptions().on_error(kSkip).max_skip_messages(0)); },
               path + ": no records: all 2 non-empty lines were skipped; the first: " + path +
                   ":1: expected a JSON object per line, got list");
}

TEST(ReadSkip, SinkErrorsAreNotSkipped) {
  TempDir dir;
  const auto path = dir.write("ok.jsonl", R"({"prompt": "p", "chosen": "c", "rejected": "r"})"
                                          "\n");
  EXPECT_THROW(read_pairs(
                   path, [](PairRecord&&) { throw std::runtime_error("sink"); }, ReadOptions().on_error(kSkip)),
               std::runtime_error);
}

}  // namespace
}  // namespace prefopt::data
