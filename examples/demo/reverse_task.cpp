// The demo's word-reversal task: prompts, the checker, the simulated annotator and the JSONL files of the shipped
// data. Never touches a model or a tensor.
#include "demo/reverse_task.h"

#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace demo {

std::string make_prompt(const std::string& word) { return word + ">"; }

std::string word_of(const std::string& prompt) {
  if (prompt.size() < 2 || prompt.back() != '>') {
    throw std::invalid_argument("demo: a prompt must be a word followed by '>', got \"" + prompt + "\"");
  }
  return prompt.substr(0, prompt.size() - 1);
}

bool is_correct(const std::string& prompt, const std::string& completion) {
  const std::string word = word_of(prompt);
  return completion == std::string(word.rbegin(), word.rend());
}

bool is_dropped_last_letter(const std::string& prompt, const std::string& completion) {
  const std::string word = word_of(prompt);
  const std::string reversed(word.rbegin(), word.rend());
  return completion == reversed.substr(0, reversed.size() - 1);
}

TaskData generate_task_data() {
  // Raw mt19937_64 draws, not std::uniform_*_distribution, whose outputs differ between standard libraries.
  std::mt19937_64 rng(kDataSeed);
  auto uniform01 = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  std::set<std::string> seen;
  TaskData data;
  while (static_cast<int64_t>(seen.size()) < kNumSft + kNumHeldout) {
    std::string word;
    for (int64_t i = 0; i < kWordLength; ++i) word.push_back(static_cast<char>('a' + rng() % 26));
    if (!seen.insert(word).second) continue;
    const std::string reversed(word.rbegin(), word.rend());
    if (static_cast<int64_t>(data.sft.size()) < kNumSft) {
      const bool drop = uniform01() < kAnnotatorDropRate;
      data.sft.push_back({make_prompt(word), drop ? reversed.substr(0, reversed.size() - 1) : reversed});
    } else {
      data.heldout.push_back({make_prompt(word), reversed});
    }
  }
  return data;
}

namespace {

std::vector<TaskExample> read_file(const std::string& path, const char* completion_key) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("demo: cannot open " + path);
  std::vector<TaskExample> out;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(number) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw std::runtime_error(where + "not JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string() || !j.contains(completion_key) ||
        !j[completion_key].is_string()) {
      throw std::runtime_error(where + "expected an object with string fields \"prompt\" and \"" +
                               completion_key + "\"");
    }
    TaskExample ex{j["prompt"].get<std::string>(), j[completion_key].get<std::string>()};
    try {
      word_of(ex.prompt);
    } catch (const std::exception& e) {
      throw std::runtime_error(where + e.what());
    }
    out.push_back(std::move(ex));
  }
  if (out.empty()) throw std::runtime_error("demo: " + path + " holds no example");
  return out;
}

void write_file(const std::vector<TaskExample>& examples, const std::string& path, const char* completion_key) {
  // Written under a temporary name and renamed, so an interrupted run leaves no half file behind.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) throw std::runtime_error("demo: cannot write " + tmp);
    for (const auto& ex : examples) {
      out << nlohmann::json{{"prompt", ex.prompt}, {completion_key, ex.completion}}.dump() << "\n";
    }
    if (!out) throw std::runtime_error("demo: writing " + tmp + " failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("demo: cannot rename " + tmp);
}

}  // namespace

TaskData read_task_data(const std::string& directory) {
  return {read_file(directory + "/sft.jsonl", "completion"), read_file(directory + "/heldout.jsonl", "answer")};
}

void write_task_data(const TaskData& data, const std::string& directory) {
  write_file(data.sft, directory + "/sft.jsonl", "completion");
  write_file(data.heldout, directory + "/heldout.jsonl", "answer");
}

}  // namespace demo
