// The demo's task: reverse a five-letter word. A prompt is "<word>>" (e.g. "mango>"), the right completion the
// word reversed ("ognam"), so a checker decides every answer exactly. The supervised data comes from a simulated
// sloppy annotator who, 60% of the time, leaves off the last letter ("ogna"): the model imitates that habit, and
// preference training on its own checked samples removes it. Holds no model code and never uses randomness other
// than its own fixed-seed std::mt19937_64, so the data is identical on every platform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace demo {

/// One prompt and a completion (the annotator's, for the supervised data; the right answer, for held-out data).
struct TaskExample {
  std::string prompt, completion;
};

/// The shipped data: supervised demonstrations (with the annotator's mistakes) and held-out prompts with their
/// right answers. No word is in both.
struct TaskData {
  std::vector<TaskExample> sft;
  std::vector<TaskExample> heldout;
};

inline constexpr uint64_t kDataSeed = 1234;
inline constexpr int64_t kWordLength = 5;
inline constexpr int64_t kNumSft = 3000;
inline constexpr int64_t kNumHeldout = 300;
/// How often the annotator drops the last letter.
inline constexpr double kAnnotatorDropRate = 0.6;

/// "mango>" for "mango".
std::string make_prompt(const std::string& word);
/// The word of a prompt ("mango>" -> "mango"); an error for a string that is not a prompt.
std::string word_of(const std::string& prompt);
/// The checker: is `completion` the prompt's word reversed, exactly?
bool is_correct(const std::string& prompt, const std::string& completion);
/// The annotator's typical mistake: the reversed word without its last letter.
bool is_dropped_last_letter(const std::string& prompt, const std::string& completion);

/// The data, generated from kDataSeed (what examples/data/demo/*.jsonl hold).
TaskData generate_task_data();
/// Reads sft.jsonl ({"prompt", "completion"}) and heldout.jsonl ({"prompt", "answer"}) from `directory`;
/// errors name the file and line.
TaskData read_task_data(const std::string& directory);
/// Writes those two files into `directory` (which must exist).
void write_task_data(const TaskData& data, const std::string& directory);

}  // namespace demo
