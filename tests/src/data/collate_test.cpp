// Tests of encoding and collation: BOS/EOS placement, conversations encoded through the chat template,
// pre-tokenized ids kept as given, the truncation rule step by step, over-long prompts (error and skip with its
// count), batch shapes, prompt masking, right padding, and labels that prefopt::sequence_logps scores exactly as
// a plain loop over the un-padded sequences does.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include <prefopt/data/collate.h>
#include <prefopt/data/jsonl.h>
#include <prefopt/scoring.h>
#include "support/expect_error.h"
#include "support/temp_files.h"

namespace prefopt::data {
namespace {

using testing::expect_error;
using Ids = std::vector<int64_t>;

Ids bytes(const std::string& s) { return Ids(s.begin(), s.end()); }
Ids cat(Ids a, const Ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
Ids row(const torch::Tensor& t, int64_t r) {
  const auto c = t[r].contiguous();
  return Ids(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

PairRecord text_pair(std::string p, std::string c, std::string r) {
  return PairRecord{Segment::from_text(std::move(p)), Segment::from_text(std::move(c)),
                    Segment::from_text(std::move(r)), Source{"pairs.jsonl", 3}};
}

constexpr int64_t kBos = ByteTokenizer::kBosId;
constexpr int64_t kEos = ByteTokenizer::kEosId;
// A fresh options object per call: TORCH_ARG setters modify the object they are called on.
EncodeOptions no_limits() { return EncodeOptions().max_prompt_length(0).max_length(0); }

// A tokenizer with no BOS (one id per byte, EOS 256), for the empty-prompt rule.
class NoBosTokenizer final : public Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override { return Ids(text.begin(), text.end()); }
  std::string decode(const std::vector<int64_t>& ids, bool) const override {
    return std::string(ids.begin(), ids.end());
  }
  int64_t vocab_size() const override { return 257; }
  std::optional<int64_t> bos_id() const override { return std::nullopt; }
  std::optional<int64_t> eos_id() const override { return 256; }
  int64_t pad_id() const override { return 256; }
};

// ---- encoding --------------------------------------------------------------------------------------------------

TEST(Encode, TextGetsBosAndEos) {
  ByteTokenizer tok;
  const auto ex = encode(text_pair("2+2=", "4", "five"), tok);
  EXPECT_EQ(ex.prompt, cat({kBos}, bytes("2+2=")));
  EXPECT_EQ(ex.chosen, cat(bytes("4"), {kEos}));
  EXPECT_EQ(ex.rejected, cat(bytes("five"), {kEos}));
  const auto bare = encode(text_pair("p", "c", "r"), tok, EncodeOptions().add_bos(false).add_eos(false));
  EXPECT_EQ(bare.prompt, bytes("p"));
  EXPECT_EQ(bare.chosen, bytes("c"));
}

TEST(Encode, ConversationsGoThroughTheChatTemplate) {
  ByteTokenizer tok;
  PairRecord r;
  r.prompt = Segment::from_messages({{"user", "2+2?"}});
  r.chosen = Segment::from_messages({{"assistant", "4"}});
  r.rejected = Segment::from_messages({{"assistant", "5"}, {"user", "sure?"}, {"assistant", "yes"}});
  const auto ex = encode(r, tok);
  EXPECT_EQ(ex.prompt, cat({kBos}, bytes("<|user|>\n2+2?\n<|assistant|>\n")));
  EXPECT_EQ(ex.chosen, cat(bytes("4\n"), {kEos}));
  EXPECT_EQ(ex.rejected, cat(bytes("5\n<|user|>\nsure?\n<|assistant|>\nyes\n"), {kEos}));
  // A completion built in code that does not start with the assistant is an error naming the field.
  r.chosen = Segment::from_messages({{"user", "4"}});
  expect_error([&] { encode(r, tok); },
               "record: field \"chosen\": a completion must start with an \"assistant\" message, got \"user\"");
}

// A tokenizer with its model's own chat template, as HFTokenizer has one: a generation prompt that is not what
// the rendered conversation continues with (as DeepSeek-R1's "<think>"), and an end-of-turn token in the text.
class TemplateTokenizer final : public Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override { return ByteTokenizer().encode(text); }
  std::string decode(const std::vector<int64_t>& ids, bool skip) const override { return ByteTokenizer().decode(ids, skip); }
  int64_t vocab_size() const override { return 259; }
  std::optional<int64_t> bos_id() const override { return 257; }
  std::optional<int64_t> eos_id() const override { return 258; }
  int64_t pad_id() const override { return 256; }
  bool has_chat_template() const override { return true; }
  std::string apply_chat_template(const std::vector<Message>& messages, bool generation, bool cont) const override {
    std::string out;
    for (size_t i = 0; i < messages.size(); ++i) {
      out += "[" + messages[i].role + "]" + messages[i].content;
      if (!(cont && i + 1 == messages.size())) out += "|";
    }
    if (generation) out += "[assistant]<think>";
    return out;
  }
};

TEST(Encode, ModelChatTemplatesFollowTrlRendering) {
  TemplateTokenizer tok;
  PairRecord r;
  r.prompt = Segment::from_messages({{"user", "hi"}});
  r.chosen = Segment::from_messages({{"assistant", "yo"}});
  r.rejected = Segment::from_messages({{"assistant", "<think>no"}});
  const auto ex = encode(r, tok, EncodeOptions().add_bos(false));
  // The prompt is cut to its common prefix with each prompt + completion rendering, in turn (TRL's
  // maybe_apply_chat_template): "[user]hi|[assistant]" after "chosen"; "rejected" keeps it.
  EXPECT_EQ(ex.prompt, bytes("[user]hi|[assistant]"));
  // The completion is the rendering after the prompt, with no EOS appended: the template ends the turn.
  EXPECT_EQ(ex.chosen, bytes("yo|"));
  EXPECT_EQ(ex.rejected, bytes("<think>no|"));
  // A prompt ending with the assistant's message is continued (continue_final_message), not closed.
  r.prompt = Segment::from_messages({{"user", "hi"}, {"assistant", "Sure"}});
  r.chosen = Segment::from_messages({{"assistant", ", yes"}});
  r.rejected = Segment::from_messages({{"assistant", "no"}});
  const auto cont = encode(r, tok, EncodeOptions().add_bos(false));
  EXPECT_EQ(cont.prompt, bytes("[user]hi|[assistant]Sure"));
  EXPECT_EQ(cont.chosen, bytes("|[assistant], yes|"));
  // Text completions still get the EOS.
  const auto text = encode(text_pair("p", "c", "r"), tok);
  EXPECT_EQ(text.chosen, cat(bytes("c"), {kEos}));
}

TEST(Encode, LanguageModellingRecordsTrainOnEveryTokenAfterTheFirst) {
  ByteTokenizer byte;
  CompletionRecord text;
  text.language_modeling = true;
  text.completion = Segment::from_text("hi");
  text.source = Source{"lm.jsonl", 1};
  auto ex = encode(text, byte);
  EXPECT_EQ(ex.prompt, (Ids{kBos}));
  EXPECT_EQ(ex.completion, cat(bytes("hi"), {kEos}));
  // Without a BOS the first character is the prompt; max_length keeps the start.
  ex = encode(text, byte, EncodeOptions().add_bos(false).max_length(2));
  EXPECT_EQ(ex.prompt, bytes("h"));
  EXPECT_EQ(ex.completion, bytes("i"));
  // A conversation is rendered whole; a model's own template gets no EOS appended.
  CompletionRecord chat;
  chat.language_modeling = true;
  chat.completion = Segment::from_messages({{"user", "q"}, {"assistant", "a"}});
  TemplateTokenizer templated;
  ex = encode(chat, templated, EncodeOptions().add_bos(false));
  EXPECT_EQ(cat(ex.prompt, ex.completion), bytes("[user]q|[assistant]a|"));
  // One token is nothing to train on.
  text.completion = Segment::from_text("x");
  expect_error([&] { encode(text, byte, EncodeOptions().add_bos(false).add_eos(false)); },
               "lm.jsonl:1: field \"text\": encodes to 1 token(s); language modelling needs at least two");
}

TEST(Encode, IdsAreCheckedAgainstTheGivenVocabularySize) {
  ByteTokenizer tok;
  PairRecord r{Segment::from_ids({300}), Segment::from_ids({499}), Segment::from_ids({1}), Source{"ids.jsonl", 3}};
  expect_error([&] { encode(r, tok); }, "ids.jsonl:3: field \"prompt_ids\": token id 300 at index 0 is outside the "
                                        "tokenizer's vocabulary [0, 259)");
  EXPECT_EQ(encode(r, tok, EncodeOptions().vocab_size(500)).chosen, (Ids{499}));
  r.chosen = Segment::from_ids({500});
  expect_error([&] { encode(r, tok, EncodeOptions().vocab_size(500)); },
               "field \"chosen_ids\": token id 500 at index 0 is outside the model's vocabulary [0, 500)");
  expect_error([&] { encode(r, tok, EncodeOptions().vocab_size(-1)); }, "EncodeOptions.vocab_size must be >= 0");
}

TEST(Encode, PreTokenizedIdsAreKeptAsGiven) {
  ByteTokenizer tok;
  PairRecord r{Segment::from_ids({5, 6}), Segment::from_ids({7}), Segment::from_text("r"), Source{"ids.jsonl", 2}};
  const auto ex = encode(r, tok);
  EXPECT_EQ(ex.prompt, (Ids{5, 6}));  // no BOS
  EXPECT_EQ(ex.chosen, (Ids{7}));     // no EOS
  EXPECT_EQ(ex.rejected, cat(bytes("r"), {kEos}));
  r.chosen = Segment::from_ids({7, 300});
  expect_error([&] { encode(r, tok); },
               "ids.jsonl:2: field \"chosen_ids\": token id 300 at index 1 is outside the tokenizer's vocabulary "
               "[0, 259)");
}

TEST(Encode, EmptyPromptNeedsABos) {
  ByteTokenizer byte;
  EXPECT_EQ(encode(text_pair("", "c", "r"), byte).prompt, (Ids{kBos}));
  NoBosTokenizer no_bos;
  expect_error([&] { encode(text_pair("", "c", "r"), no_bos); },
               "pairs.jsonl:3: field \"prompt\": the prompt encodes to no token, so nothing predicts the first "
               "completion token (give a prompt or use a tokenizer with a BOS token)");
  expect_error([&] { encode(text_pair("", "c", "r"), byte, EncodeOptions().add_bos(false)); },
               "field \"prompt\": the prompt encodes to no token");
  // Without an EOS either, an empty completion text encodes to nothing.
  PairRecord r = text_pair("p", "", "r");
  expect_error([&] { encode(r, byte, EncodeOptions().add_eos(false)); },
               "pairs.jsonl:3: field \"chosen\": empty completion (it encodes to no token)");
}

TEST(Encode, TruncationRuleStepByStep) {
  ByteTokenizer tok;
  const auto record = text_pair("abcdefgh", "0123456789", "xy");  // prompt 9 ids with BOS, chosen 11, rejected 3
  // 1. max_prompt_length keeps the end (BOS lost) or the start.
  auto ex = encode(record, tok, no_limits().max_prompt_length(4));
  EXPECT_EQ(ex.prompt, bytes("efgh"));
  ex = encode(record, tok, no_limits().max_prompt_length(4).truncation_mode(kKeepStart));
  EXPECT_EQ(ex.prompt, cat({kBos}, bytes("abc")));
  // 2. max_completion_length keeps each completion's start (EOS lost when cut).
  ex = encode(record, tok, no_limits().max_completion_length(5));
  EXPECT_EQ(ex.chosen, bytes("01234"));
  EXPECT_EQ(ex.rejected, cat(bytes("xy"), {kEos}));
  // 3. max_length cuts each completion to max_length - prompt.
  ex = encode(record, tok, no_limits().max_length(13));
  EXPECT_EQ(ex.prompt.size(), 9u);
  EXPECT_EQ(ex.chosen, bytes("0123"));
  EXPECT_EQ(ex.rejected, cat(bytes("xy"), {kEos}));
  // All three, in order: prompt to 4, completion to 6, then to 8 - 4 = 4.
  ex = encode(record, tok, EncodeOptions().max_prompt_length(4).max_completion_length(6).max_length(8));
  EXPECT_EQ(ex.prompt, bytes("efgh"));
  EXPECT_EQ(ex.chosen, bytes("0123"));
  EXPECT_EQ(ex.rejected, cat(bytes("xy"), {kEos}));
  // TRL's defaults: 512 / none / 1024.
  EXPECT_EQ(EncodeOptions().max_prompt_length(), 512);
  EXPECT_EQ(EncodeOptions().max_completion_length(), 0);
  EXPECT_EQ(EncodeOptions().max_length(), 1024);
}

TEST(Encode, OverLongPromptIsAnErrorNamingTheRecord) {
  ByteTokenizer tok;
  const auto record = text_pair("abcdefgh", "c", "r");  // 9 prompt ids
  expect_error([&] { encode(record, tok, no_limits().max_length(9)); },
               "pairs.jsonl:3: field \"prompt\": over-long prompt: 9 tokens leave no room for a completion within "
               "max_length 9 (set max_prompt_length below max_length to truncate it)");
  // One token of room is enough.
  EXPECT_EQ(encode(record, tok, no_limits().max_length(10)).chosen, bytes("c"));
  // With max_prompt_length below max_length it is a truncation instead.
  EXPECT_EQ(encode(record, tok, EncodeOptions().max_prompt_length(5).max_length(9)).prompt, bytes("defgh"));
}

TEST(Encode, BadOptions) {
  ByteTokenizer tok;
  const auto record = text_pair("p", "c", "r");
  expect_error([&] { encode(record, tok, EncodeOptions().max_length(-1)); },
               "EncodeOptions.max_length must be >= 0 (0 = no limit), got -1");
  expect_error([&] { encode(record, tok, EncodeOptions().max_prompt_length(-2)); },
               "EncodeOptions.max_prompt_length must be >= 0 (0 = no limit), got -2");
  expect_error([&] { encode(record, tok, EncodeOptions().max_completion_length(-3)); },
               "EncodeOptions.max_completion_length must be >= 0 (0 = no limit), got -3");
}

TEST(EncodeAll, SkipModeCountsOverLongPrompts) {
  ByteTokenizer tok;
  std::vector<PairRecord> records = {text_pair("ok", "c", "r"), text_pair(std::string(20, 'x'), "c", "r"),
                                     text_pair("fine", "c", "r")};
  records[1].source.line = 8;
  const auto opts = no_limits().max_length(16);
  const auto skip = EncodeOptions(opts).on_error(kSkip);
  expect_error([&] { encode_all(records, tok, opts); }, "pairs.jsonl:8: field \"prompt\": over-long prompt: 21 tokens");
  const auto result = encode_all(records, tok, skip);
  ASSERT_EQ(result.items.size(), 2u);
  EXPECT_EQ(result.items[1].prompt, cat({kBos}, bytes("fine")));
  EXPECT_EQ(result.skipped.count, 1);
  ASSERT_EQ(result.skipped.messages.size(), 1u);
  EXPECT_EQ(result.skipped.messages[0].rfind("pairs.jsonl:8: field \"prompt\": over-long prompt", 0), 0u);

  const std::vector<PairRecord> all_bad = {records[1]};
  expect_error([&] { encode_all(all_bad, tok, skip); },
               "encode_all: all 1 records were skipped; the first: pairs.jsonl:8: field \"prompt\": over-long prompt");
  expect_error([&] { encode_all(std::vector<PairRecord>{}, tok); }, "encode_all: records is empty");
}

TEST(Encode, EveryRecordKind) {
  ByteTokenizer tok;
  // DOVE: each prompt truncated and checked on its own.
  JointPairRecord joint{Segment::from_text("x1"), Segment::from_text("yyyy"), Segment::from_text("x22"),
                        Segment::from_ids({9, 8}), Source{"dove.jsonl", 5}};
  const auto j = encode(joint, tok, no_limits().max_length(5));
  EXPECT_EQ(j.chosen_prompt, cat({kBos}, bytes("x1")));
  EXPECT_EQ(j.chosen, bytes("yy"));
  EXPECT_EQ(j.rejected_prompt, cat({kBos}, bytes("x22")));
  EXPECT_EQ(j.rejected, (Ids{9}));
  expect_error([&] { encode(joint, tok, no_limits().max_length(4)); },
               "dove.jsonl:5: field \"rejected_prompt\": over-long prompt: 4 tokens");

  // Lists: one prompt, every response truncated by the same rule; labels and kind carried over.
  ListRecord list{Segment::from_text("q"),
                  {Segment::from_text("a"), Segment::from_text("bbbbbb"), Segment::from_ids({7})},
                  {1, 3, 2},
                  ListLabelKind::Ranks,
                  Source{"lists.jsonl", 2}};
  const auto l = encode(list, tok, no_limits().max_completion_length(3));
  EXPECT_EQ(l.prompt, cat({kBos}, bytes("q")));
  ASSERT_EQ(l.responses.size(), 3u);
  EXPECT_EQ(l.responses[0], cat(bytes("a"), {kEos}));
  EXPECT_EQ(l.responses[1], bytes("bbb"));
  EXPECT_EQ(l.responses[2], (Ids{7}));
  EXPECT_EQ(l.labels, (std::vector<double>{1, 3, 2}));
  EXPECT_EQ(l.label_kind, ListLabelKind::Ranks);
  list.responses[2] = Segment::from_ids({7, 999});
  expect_error([&] { encode(list, tok); },
               "lists.jsonl:2: field \"responses[2]_ids\": token id 999 at index 1 is outside the tokenizer's "
               "vocabulary [0, 259)");
  list.labels.pop_back();
  expect_error([&] { encode(list, tok); }, "lists.jsonl:2: field \"ranks\": has 2 entries but \"responses\" has 3");

  // KTO.
  UnpairedRecord kto{Segment::from_messages({{"user", "hi"}}), Segment::from_messages({{"assistant", "yo"}}), true,
                     Source{}};
  const auto u = encode(kto, tok);
  EXPECT_EQ(u.prompt, cat({kBos}, bytes("<|user|>\nhi\n<|assistant|>\n")));
  EXPECT_EQ(u.completion, cat(bytes("yo\n"), {kEos}));
  EXPECT_TRUE(u.label);
}

// ---- collation -------------------------------------------------------------------------------------------------

TEST(CollatePairs, LayoutMaskingPaddingAndShiftedLabels) {
  const std::vector<PairExample> examples = {{{1, 2, 3}, {4, 5}, {6}}, {{7}, {8, 9, 10, 11}, {12, 13}}};
  const auto b = collate_pairs(examples, CollateOptions().pad_token_id(99));
  EXPECT_EQ(b.num_pairs, 2);
  // Rows: chosen 0, chosen 1, rejected 0, rejected 1; T = max(3 + 2, 1 + 4, 3 + 1, 1 + 2) = 5.
  ASSERT_EQ(b.input_ids.sizes(), (c10::IntArrayRef{4, 5}));
  EXPECT_EQ(b.input_ids.scalar_type(), torch::kLong);
  EXPECT_EQ(b.attention_mask.scalar_type(), torch::kLong);
  EXPECT_EQ(b.labels.scalar_type(), torch::kLong);
  EXPECT_EQ(row(b.input_ids, 0), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(row(b.input_ids, 1), (Ids{7, 8, 9, 10, 11}));
  EXPECT_EQ(row(b.input_ids, 2), (Ids{1, 2, 3, 6, 99}));
  EXPECT_EQ(row(b.input_ids, 3), (Ids{7, 12, 13, 99, 99}));
  EXPECT_EQ(row(b.attention_mask, 2), (Ids{1, 1, 1, 1, 0}));
  EXPECT_EQ(row(b.attention_mask, 3), (Ids{1, 1, 1, 0, 0}));
  // labels[r, t] = input_ids[r, t + 1] on the completion, -100 on prompt, padding and the last column.
  EXPECT_EQ(row(b.labels, 0), (Ids{-100, -100, 4, 5, -100}));
  EXPECT_EQ(row(b.labels, 1), (Ids{8, 9, 10, 11, -100}));
  EXPECT_EQ(row(b.labels, 2), (Ids{-100, -100, 6, -100, -100}));
  EXPECT_EQ(row(b.labels, 3), (Ids{12, 13, -100, -100, -100}));
  EXPECT_EQ(Ids(b.prompt_lengths.data_ptr<int64_t>(), b.prompt_lengths.data_ptr<int64_t>() + 4), (Ids{3, 1, 3, 1}));
  EXPECT_EQ(Ids(b.completion_lengths.data_ptr<int64_t>(), b.completion_lengths.data_ptr<int64_t>() + 4),
            (Ids{2, 4, 1, 2}));
  // The number of scored labels is the completion length.
  EXPECT_TRUE(b.labels.ne(-100).sum(1).equal(b.completion_lengths));
}

TEST(CollatePairs, OptionsIgnoreIndexAndPadMultiple) {
  const std::vector<PairExample> examples = {{{1}, {2, 3}, {4}}};
  const auto b = collate_pairs(examples, CollateOptions().ignore_index(-1).pad_to_multiple_of(8));
  ASSERT_EQ(b.input_ids.sizes(), (c10::IntArrayRef{2, 8}));
  EXPECT_EQ(row(b.labels, 0), (Ids{2, 3, -1, -1, -1, -1, -1, -1}));
  EXPECT_EQ(row(b.input_ids, 1), (Ids{1, 4, 0, 0, 0, 0, 0, 0}));  // default pad id 0
  EXPECT_EQ(b.attention_mask.sum().item<int64_t>(), 3 + 2);
}

// Sum over the completion tokens of log softmax(logits[r, j - 1])[token j], from the un-padded sequence.
double loop_logp(const torch::Tensor& logits_row, const Ids& prompt, const Ids& completion, bool joint = false) {
  const Ids full = cat(prompt, completion);
  const auto logp = torch::log_softmax(logits_row, -1);
  double total = 0;
  const size_t first = joint ? 1 : prompt.size();
  for (size_t j = first; j < full.size(); ++j) {
    total += logp[static_cast<int64_t>(j - 1)][full[j]].item<double>();
  }
  return total;
}

Ids random_ids(int64_t n, int64_t vocab) {
  const auto t = torch::randint(vocab, {n}, torch::kLong);
  return Ids(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

TEST(CollatePairs, LabelsScoreLikeALoopOverUnpaddedSequences) {
  torch::manual_seed(0);
  const int64_t vocab = 11;
  std::vector<PairExample> examples;
  for (int64_t i = 0; i < 5; ++i) {
    examples.push_back(
        {random_ids(1 + i % 3, vocab), random_ids(1 + (i * 2) % 5, vocab), random_ids(4 - i % 4, vocab)});
  }
  const auto b = collate_pairs(examples, CollateOptions().pad_token_id(3).pad_to_multiple_of(4));
  const int64_t n = b.input_ids.size(0), t = b.input_ids.size(1);
  const auto logits = torch::randn({n, t, vocab}, torch::kDouble);
  const auto logps = prefopt::sequence_logps(logits, b.labels).logps;
  ASSERT_EQ(logps.sizes(), (c10::IntArrayRef{10}));
  for (int64_t i = 0; i < 5; ++i) {
    const auto& e = examples[i];
    EXPECT_NEAR(logps[i].item<double>(), loop_logp(logits[i], e.prompt, e.chosen), 1e-12) << i;
    EXPECT_NEAR(logps[5 + i].item<double>(), loop_logp(logits[5 + i], e.prompt, e.rejected), 1e-12) << i;
  }
  // Padding logits do not matter: changing them changes no score.
  const auto noisy = logits + torch::randn_like(logits) * (1 - b.attention_mask).unsqueeze(-1).to(torch::kDouble);
  EXPECT_TRUE(torch::allclose(prefopt::sequence_logps(noisy, b.labels).logps, logps, 0, 0));
}

TEST(CollateJointPairs, JointLabelsScorePromptsToo) {
  torch::manual_seed(1);
  const int64_t vocab = 7;
  std::vector<JointPairExample> examples = {{{1, 2}, {3}, {4, 5, 6}, {1, 2}}, {{5}, {6, 6, 6}, {2}, {3}}};
  const auto b = collate_joint_pairs(examples, CollateOptions().pad_token_id(0));
  EXPECT_EQ(b.num_pairs, 2);
  ASSERT_EQ(b.input_ids.sizes(), (c10::IntArrayRef{4, 5}));
  EXPECT_EQ(row(b.input_ids, 2), (Ids{4, 5, 6, 1, 2}));
  EXPECT_EQ(row(b.labels, 2), (Ids{-100, -100, 1, 2, -100}));
  EXPECT_EQ(row(b.joint_labels, 2), (Ids{5, 6, 1, 2, -100}));
  EXPECT_EQ(row(b.joint_labels, 3), (Ids{3, -100, -100, -100, -100}));
  const auto logits = torch::randn({4, 5, vocab}, torch::kDouble);
  const auto joint = prefopt::sequence_logps(logits, b.joint_labels).logps;
  const auto completion = prefopt::sequence_logps(logits, b.labels).logps;
  for (int64_t i = 0; i < 2; ++i) {
    const auto& e = examples[i];
    EXPECT_NEAR(joint[i].item<double>(), loop_logp(logits[i], e.chosen_prompt, e.chosen, true), 1e-12);
    EXPECT_NEAR(joint[2 + i].item<double>(), loop_logp(logits[2 + i], e.rejected_prompt, e.rejected, true), 1e-12);
    EXPECT_NEAR(completion[2 + i].item<double>(), loop_logp(logits[2 + i], e.rejected_prompt, e.rejected), 1e-12);
  }
}

TEST(CollateLists, SlotsMaskLabelsAndScores) {
  torch::manual_seed(2);
  const int64_t vocab = 9;
  std::vector<ListExample> examples = {{{1, 2}, {{3}, {4, 5}, {6, 7, 8}}, {0.5, 2, -1}, ListLabelKind::Scores},
                                       {{8}, {{1, 1}}, {7}, ListLabelKind::Scores}};
  const auto b = collate_lists(examples);
  EXPECT_EQ(b.num_lists, 2);
  EXPECT_EQ(b.list_size, 3);
  EXPECT_EQ(b.label_kind, ListLabelKind::Scores);
  ASSERT_EQ(b.input_ids.sizes(), (c10::IntArrayRef{6, 5}));
  ASSERT_EQ(b.list_labels.sizes(), (c10::IntArrayRef{2, 3}));
  EXPECT_EQ(b.list_labels.scalar_type(), torch::kDouble);
  EXPECT_EQ(b.list_mask.scalar_type(), torch::kBool);
  EXPECT_TRUE(b.list_labels.equal(torch::tensor({{0.5, 2.0, -1.0}, {7.0, 0.0, 0.0}}, torch::kDouble)));
  EXPECT_TRUE(b.list_mask.equal(torch::tensor({{true, true, true}, {true, false, false}})));
  // Row b * K + k; a missing slot holds the prompt alone, attended, with nothing scored.
  EXPECT_EQ(row(b.input_ids, 2), (Ids{1, 2, 6, 7, 8}));
  EXPECT_EQ(row(b.input_ids, 3), (Ids{8, 1, 1, 0, 0}));
  EXPECT_EQ(row(b.input_ids, 4), (Ids{8, 0, 0, 0, 0}));
  EXPECT_EQ(row(b.attention_mask, 5), (Ids{1, 0, 0, 0, 0}));
  EXPECT_EQ(row(b.labels, 5), (Ids{-100, -100, -100, -100, -100}));
  EXPECT_TRUE(b.completion_lengths.equal(torch::tensor({1, 2, 3, 2, 0, 0}, torch::kLong)));

  const auto logits = torch::randn({6, 5, vocab}, torch::kDouble);
  const auto scores = prefopt::sequence_logps(logits, b.labels).logps.view({b.num_lists, b.list_size});
  for (int64_t i = 0; i < 2; ++i) {
    for (size_t k = 0; k < examples[i].responses.size(); ++k) {
      EXPECT_NEAR(scores[i][static_cast<int64_t>(k)].item<double>(),
                  loop_logp(logits[i * 3 + static_cast<int64_t>(k)], examples[i].prompt, examples[i].responses[k]),
                  1e-12);
    }
  }
  EXPECT_EQ(scores[1][1].item<double>(), 0.0);

  const auto wide = collate_lists(examples, CollateOptions().list_size(4));
  EXPECT_EQ(wide.input_ids.size(0), 8);
  EXPECT_EQ(wide.list_mask.sum().item<int64_t>(), 4);
  expect_error([&] { collate_lists(examples, CollateOptions().list_size(2)); },
               "collate_lists: a list has 3 responses, more than CollateOptions.list_size 2");
  examples[1].label_kind = ListLabelKind::Ranks;
  expect_error([&] { collate_lists(examples); },
               "collate_lists: examples[1] holds ranks but examples[0] holds scores; a batch needs one kind");
  examples[1].label_kind = ListLabelKind::Scores;
  examples[0].labels[2] = std::nan("");
  expect_error([&] { collate_lists(examples); }, "collate_lists: examples[0].labels[2] = nan is not finite");
  examples[0].labels[2] = -1;
  examples[1].labels.push_back(1);
  expect_error([&] { collate_lists(examples); },
               "collate_lists: examples[1].labels has 2 entries but examples[1].responses has 1");
  examples[1].responses.clear();
  expect_error([&] { collate_lists(examples); },
               "collate_lists: examples[1].responses is empty; a list needs at least one response");
}

TEST(CollateUnpaired, DesirableAndKlRotation) {
  std::vector<UnpairedExample> examples = {{{1}, {2, 3}, true}, {{4, 5}, {6}, false}, {{7}, {8, 9, 10}, true}};
  const auto b = collate_unpaired(examples);
  ASSERT_EQ(b.input_ids.sizes(), (c10::IntArrayRef{3, 4}));
  EXPECT_TRUE(b.desirable.equal(torch::tensor({true, false, true})));
  EXPECT_EQ(row(b.labels, 1), (Ids{-100, 6, -100, -100}));

  // TRL's rotation: example i takes the completion of example i - 1 (example 0 the last one's).
  const auto kl = kto_kl_examples(examples);
  EXPECT_EQ(kl[0].prompt, (Ids{1}));
  EXPECT_EQ(kl[0].completion, (Ids{8, 9, 10}));
  EXPECT_EQ(kl[1].completion, (Ids{2, 3}));
  EXPECT_EQ(kl[2].completion, (Ids{6}));
  EXPECT_TRUE(kl[0].label);
  const auto cut = kto_kl_examples(examples, 3);
  EXPECT_EQ(cut[0].completion, (Ids{8, 9}));  // 3 - 1 prompt token
  EXPECT_EQ(cut[1].completion, (Ids{2}));     // 3 - 2
  expect_error([&] { kto_kl_examples({examples[0]}); },
               "kto_kl_examples: needs at least 2 examples to mismatch, got 1");
  expect_error(
      [&] { kto_kl_examples(examples, 2); },
      "kto_kl_examples: examples[1].prompt has 2 tokens, leaving no room for a completion within max_length 2");
}

TEST(CollateSequences, SftBatchAndErrors) {
  const auto b = collate_sequences({{257, 50}}, {{52, 258}});
  EXPECT_EQ(row(b.input_ids, 0), (Ids{257, 50, 52, 258}));
  EXPECT_EQ(row(b.labels, 0), (Ids{-100, 52, 258, -100}));
  expect_error([] { collate_sequences({}, {}); },
               "collate_sequences: prompts is empty; a batch needs at least one row");
  expect_error(
      [] {
        collate_sequences({{1}}, {{2}, {3}});
      },
      "collate_sequences: prompts has 1 rows but completions has 2");
  expect_error([] { collate_sequences({{1}}, {{}}); }, "collate_sequences: completions[0] is empty");
}

TEST(CollateErrors, BadExamplesAndOptions) {
  expect_error([] { collate_pairs({}); }, "collate_pairs: examples is empty; a batch needs at least one pair");
  expect_error(
      [] {
        collate_pairs({{{}, {1}, {2}}});
      },
      "collate_pairs: examples[0].prompt is empty: nothing would predict the first completion token");
  expect_error(
      [] {
        collate_pairs({{{1}, {1}, {2}}, {{1}, {1}, {}}});
      },
      "collate_pairs: examples[1].rejected is empty");
  expect_error([] { collate_pairs({{{1}, {1, -5}, {2}}}); }, "collate_pairs: examples[0].chosen[1] = -5 is negative");
  expect_error(
      [] {
        collate_pairs({{{1}, {1}, {2}}}, CollateOptions().pad_to_multiple_of(0));
      },
      "collate_pairs: CollateOptions.pad_to_multiple_of must be >= 1, got 0");
  expect_error(
      [] {
        collate_pairs({{{1}, {1}, {2}}}, CollateOptions().pad_token_id(-1));
      },
      "collate_pairs: CollateOptions.pad_token_id must be >= 0, got -1");
  expect_error(
      [] {
        collate_joint_pairs({{{1}, {2}, {}, {3}}});
      },
      "collate_joint_pairs: examples[0].rejected_prompt is empty");
  expect_error([] { collate_unpaired({}); }, "collate_unpaired: examples is empty");
  expect_error([] { collate_lists({}, CollateOptions().list_size(-1)); },
               "collate_lists: CollateOptions.list_size must be >= 0 (0 = the longest list), got -1");
}

// ---- end to end ------------------------------------------------------------------------------------------------

TEST(DataPipeline, FileToScoredBatch) {
  testing::TempDir dir;
  const auto path = dir.write(
      "train.jsonl",
      R"({"prompt": "2+2=", "chosen": "4", "rejected": "22"})"
      "\n"
      R"({"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}], )"
      R"("rejected": [{"role": "assistant", "content": "go away"}]})"
      "\n"
      R"({"prompt": ")" +
          std::string(40, 'x') + R"(", "chosen": "y", "rejected": "n"})" + "\n" +
          R"({"prompt_ids": [10, 20], "chosen_ids": [30], "rejected_ids": [40, 50]})" + "\n");
  ByteTokenizer tok;
  const auto records = read_pairs(path).items;
  ASSERT_EQ(records.size(), 4u);
  const auto opts = EncodeOptions().max_prompt_length(0).max_length(32).on_error(kSkip);
  const auto examples = encode_all(records, tok, opts);
  ASSERT_EQ(examples.items.size(), 3u);
  EXPECT_EQ(examples.skipped.count, 1);
  EXPECT_EQ(examples.skipped.messages[0].rfind(path + ":3: field \"prompt\": over-long prompt: 41 tokens", 0), 0u);
  const auto batch = collate_pairs(examples.items, CollateOptions().pad_token_id(tok.pad_id()));
  ASSERT_EQ(batch.input_ids.size(0), 6);
  // The conversation's prompt is 27 ids (BOS + 26 bytes), so max_length 32 leaves its completion 5 of its 7.
  EXPECT_EQ(batch.prompt_lengths[1].item<int64_t>(), 27);
  EXPECT_EQ(tok.decode(row(batch.input_ids, 1), true), "<|user|>\nhi\n<|assistant|>\nhello");
  // Row 5: the pre-tokenized pair's rejected sequence, ids as given, then padding.
  EXPECT_EQ(tok.decode(row(batch.input_ids, 5), true), "\x0a\x14\x28\x32");
  EXPECT_EQ(tok.decode(row(batch.input_ids, 5), false).substr(4, 5), "<pad>");
  const auto logits = torch::randn({6, batch.input_ids.size(1), tok.vocab_size()});
  const auto logps = prefopt::sequence_logps(logits, batch.labels).logps;
  EXPECT_TRUE(torch::isfinite(logps).all().item<bool>());
  EXPECT_TRUE(batch.labels.ne(-100).sum(1).equal(batch.completion_lengths));
}

}  // namespace
}  // namespace prefopt::data
