// Preference-data records as they come out of a file, before tokenization: pairwise (DPO), joint pairs with
// two prompts (DOVE), ranked lists (listwise losses) and unpaired examples (KTO), each piece held as the file
// gave it (plain text, a conversation, or token ids), plus the chat template that renders conversations.
// Plain data and string functions: nothing here reads a file, tokenizes, or makes a tensor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace prefopt::data {

/// What a reader or an encoder does with a malformed record.
enum class OnError {
  Raise,  ///< raise a c10::Error naming the file, the 1-based line and the field (the default)
  Skip,   ///< leave the record out, count it, and keep the first messages (SkipReport)
};
inline constexpr OnError kRaise = OnError::Raise;
inline constexpr OnError kSkip = OnError::Skip;

/// Records that were left out under OnError::Skip.
struct SkipReport {
  /// How many records were skipped.
  int64_t count = 0;
  /// The error messages of the first skipped records (at most the caller's max_skip_messages), in order.
  std::vector<std::string> messages;
};

/// A sequence of items with the report of the ones skipped to make it.
template <typename T>
struct DataResult {
  std::vector<T> items;
  SkipReport skipped;
};

/// Where a record came from: "file:line" in error messages.
struct Source {
  /// The path as the caller passed it to the reader; empty for a record built in code.
  std::string file;
  /// 1-based line number in the file; 0 for a record built in code.
  int64_t line = 0;
};

/// "file:line", or "record" for a record built in code (empty file).
std::string to_string(const Source& source);

/// One message of a conversation, TRL's {"role": ..., "content": ...}.
struct Message {
  /// A non-empty run of ASCII letters, digits, '_' and '-' ("system", "user", "assistant", "tool", ...).
  std::string role;
  /// UTF-8 bytes, kept exactly as the file gave them.
  std::string content;
};

/// One piece of an example (a prompt or a completion) in the form the file gave it.
struct Segment {
  enum class Kind {
    Text,      ///< plain text, tokenized by the encoder
    Messages,  ///< a conversation, rendered with the chat template below, then tokenized
    Ids,       ///< token ids from a *_ids field, used exactly as given (no BOS/EOS added)
  };
  Kind kind = Kind::Text;
  std::string text;               ///< Kind::Text
  std::vector<Message> messages;  ///< Kind::Messages
  std::vector<int64_t> ids;       ///< Kind::Ids, each >= 0

  static Segment from_text(std::string text);
  static Segment from_messages(std::vector<Message> messages);
  static Segment from_ids(std::vector<int64_t> ids);
};

/// TRL's pairwise preference record: {"prompt", "chosen", "rejected"}, with the optional numbers reward-model
/// training reads: "margin" (TRL's RewardTrainer column: how much better chosen is, for loss_type margin) and
/// "magnitude" (a preference strength >= 0, for loss_type scaled).
struct PairRecord {
  Segment prompt;
  Segment chosen;
  Segment rejected;
  Source source;
  std::optional<double> margin;
  std::optional<double> magnitude;
};

/// DOVE's joint preference record: a chosen (prompt, response) pair preferred to a rejected pair with its own
/// prompt; fields {"chosen_prompt", "chosen", "rejected_prompt", "rejected"}.
struct JointPairRecord {
  Segment chosen_prompt;
  Segment chosen;
  Segment rejected_prompt;
  Segment rejected;
  Source source;
};

/// What the labels of a ranked list hold (the data-side twin of the listwise losses' ListLabels).
enum class ListLabelKind {
  Scores,  ///< "scores": higher is better
  Ranks,   ///< "ranks": lower is better (1 = best; only the order matters)
};

/// A ranked list: one prompt, K >= 1 responses and one label each; fields {"prompt", "responses", "scores"}
/// or {"prompt", "responses", "ranks"}.
struct ListRecord {
  Segment prompt;
  std::vector<Segment> responses;
  /// One finite label per response, as the file gave it.
  std::vector<double> labels;
  ListLabelKind label_kind = ListLabelKind::Scores;
  Source source;
};

/// A supervised-fine-tuning record: {"prompt", "completion"} (TRL's prompt-completion format), or one of TRL's
/// language-modelling records, {"text"} or {"messages"}, whose every token after the first is trained on.
struct CompletionRecord {
  Segment prompt;
  Segment completion;
  Source source;
  /// A language-modelling record: `completion` holds the whole text or conversation and `prompt` is unused;
  /// the encoder makes the first token the prompt.
  bool language_modeling = false;
};

/// KTO's unpaired record: {"prompt", "completion", "label"}, label true for a desirable completion.
struct UnpairedRecord {
  Segment prompt;
  Segment completion;
  bool label = false;
  Source source;
};

/// The chat template, exactly. One message renders as
///
///     "<|" + role + "|>\n" + content + "\n"
///
/// and a conversation as its messages' renderings concatenated, with nothing before, between or after.
/// A prompt is rendered with the assistant's header appended as the generation prompt, and a completion
/// (whose first message must be the assistant's) without that first header, so that
/// `render_prompt(p) + render_completion(c) == render_conversation(p + c)` for every prompt p and completion c.
///
/// Example:
/// ```
/// render_prompt({{"system", "Be brief."}, {"user", "2+2?"}});
/// //   "<|system|>\nBe brief.\n<|user|>\n2+2?\n<|assistant|>\n"
/// render_completion({{"assistant", "4"}});
/// //   "4\n"
/// ```
std::string render_conversation(const std::vector<Message>& messages);
/// render_conversation(prompt) + "<|assistant|>\n". An empty prompt renders as "<|assistant|>\n" alone.
std::string render_prompt(const std::vector<Message>& prompt);
/// The content of the first message (which must have the role "assistant") + "\n", then
/// render_conversation of the remaining messages. Raises an error for an empty list or another first role.
std::string render_completion(const std::vector<Message>& completion);

}  // namespace prefopt::data
