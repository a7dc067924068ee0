// Shared fixtures of the train tests: a tiny byte-level Llama and small encoded datasets built in code.
#pragma once

#include <string>
#include <vector>

#include <torch/utils.h>

#include <prefopt/data/collate.h>
#include <prefopt/data/tokenizer.h>
#include <prefopt/model/llama.h>
#include <prefopt/train/dataset.h>

namespace prefopt::testing {

inline LlamaForCausalLM tiny_model(uint64_t seed = 0) {
  torch::manual_seed(seed);
  auto config = LlamaConfig()
                    .vocab_size(data::ByteTokenizer::kVocabSize)
                    .hidden_size(16)
                    .intermediate_size(32)
                    .num_hidden_layers(1)
                    .num_attention_heads(2)
                    .num_key_value_heads(1)
                    .tie_word_embeddings(true)
                    .pad_token_id(data::ByteTokenizer::kPadId);
  return LlamaForCausalLM(config);
}

inline std::vector<int64_t> ids(const std::string& text, bool bos = false, bool eos = false) {
  data::ByteTokenizer tok;
  auto out = tok.encode(text);
  if (bos) out.insert(out.begin(), data::ByteTokenizer::kBosId);
  if (eos) out.push_back(data::ByteTokenizer::kEosId);
  return out;
}

inline train::Dataset tiny_pairs(int n) {
  std::vector<data::PairExample> pairs;
  for (int i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    pairs.push_back({ids("q" + k + ":", true), ids(" yes" + std::string(i % 3, '!'), false, true),
                     ids(" no" + k, false, true)});
  }
  return train::Dataset::from_pairs(std::move(pairs));
}

inline train::Dataset tiny_lists(int n) {
  std::vector<data::ListExample> lists;
  for (int i = 0; i < n; ++i) {
    data::ListExample ex;
    ex.prompt = ids("list" + std::to_string(i) + ":", true);
    ex.responses = {ids(" best", false, true), ids(" ok", false, true), ids(" bad" + std::string(i % 2, '?'), false, true)};
    if (i % 3 == 0) ex.responses.pop_back();  // lists of different sizes
    ex.labels = ex.responses.size() == 3 ? std::vector<double>{2, 1, 0} : std::vector<double>{1, 0};
    lists.push_back(std::move(ex));
  }
  return train::Dataset::from_lists(std::move(lists));
}

inline train::Dataset tiny_unpaired(int n) {
  std::vector<data::UnpairedExample> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({ids("u" + std::to_string(i) + ":", true), ids(i % 2 ? " good" : " bad", false, true), i % 2 == 1});
  }
  return train::Dataset::from_unpaired(std::move(out));
}

inline train::Dataset tiny_joint(int n) {
  std::vector<data::JointPairExample> out;
  for (int i = 0; i < n; ++i) {
    const std::string k = std::to_string(i), other = std::to_string((i + 1) % n);
    out.push_back({ids("j" + k + ":", true), ids(" right" + k, false, true), ids("j" + other + "?", true),
                   ids(" wrong", false, true)});
  }
  return train::Dataset::from_joint(std::move(out));
}

// Ranked lists whose responses have steps separated by newlines, with their step ids (TPO).
inline train::Dataset tiny_step_lists(int n) {
  std::vector<data::ListExample> lists;
  for (int i = 0; i < n; ++i) {
    data::ListExample ex;
    ex.prompt = ids("sum" + std::to_string(i) + ":", true);
    ex.responses = {ids(" a=1\nb=2\nok", false, true), ids(" guess\nno", false, true), ids(" x", false, true)};
    if (i % 2 == 1) ex.responses.pop_back();
    ex.labels = ex.responses.size() == 3 ? std::vector<double>{2, 1, 0} : std::vector<double>{1, 0};
    lists.push_back(std::move(ex));
  }
  auto data = train::Dataset::from_lists(std::move(lists));
  train::add_step_ids(data, data::ByteTokenizer(), "\n");
  return data;
}

inline train::Dataset tiny_completions(int n) {
  std::vector<train::CompletionExample> out;
  for (int i = 0; i < n; ++i) out.push_back({ids("c" + std::to_string(i), true), ids(" done", false, true)});
  return train::Dataset::from_completions(std::move(out));
}

}  // namespace prefopt::testing
