// prefopt-dpo-demo: scores a handful of preference pairs with a tiny bigram language model, prints the DPO
// losses, rewards and TRL metrics, then takes a few DPO steps and prints them again, so a reader sees the
// loss fall and the chosen responses gain reward over the frozen reference. Uses no data files.
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <prefopt/prefopt.h>

namespace {

struct Pair {
  std::string prompt, chosen, rejected;
};

const std::vector<Pair> kPairs = {
    {"the capital of france is", "paris", "rome"},
    {"two plus two is", "four", "five"},
    {"water freezes at zero", "degrees celsius", "degrees fahrenheit"},
    {"the sun rises in the", "east", "west"},
    {"a week has", "seven days", "five days"},
    {"the largest ocean is the", "pacific", "atlantic"},
};

// A word-level vocabulary built from the pairs; token 0 is the beginning of a sequence.
struct Vocabulary {
  std::map<std::string, int64_t> ids{{"<s>", 0}};
  std::vector<std::string> words{"<s>"};

  std::vector<int64_t> encode(const std::string& text) {
    std::vector<int64_t> out;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find(' ', start);
      if (end == std::string::npos) end = text.size();
      const std::string word = text.substr(start, end - start);
      auto [it, inserted] = ids.emplace(word, static_cast<int64_t>(words.size()));
      if (inserted) words.push_back(word);
      out.push_back(it->second);
      start = end + 1;
    }
    return out;
  }
};

// Input ids [N, T] and shifted labels [N, T] with the prompt and padding set to -100.
struct Encoded {
  torch::Tensor inputs, labels;
};

Encoded encode_batch(Vocabulary& vocab, const std::vector<std::pair<std::string, std::string>>& rows) {
  std::vector<std::vector<int64_t>> ids, labels;
  size_t longest = 0;
  for (const auto& [prompt, completion] : rows) {
    std::vector<int64_t> seq{0};
    const auto p = vocab.encode(prompt), c = vocab.encode(completion);
    seq.insert(seq.end(), p.begin(), p.end());
    seq.insert(seq.end(), c.begin(), c.end());
    // Position t predicts seq[t + 1]; only completion tokens are scored.
    std::vector<int64_t> lab(seq.size() - 1, -100);
    for (size_t t = p.size(); t < lab.size(); ++t) lab[t] = seq[t + 1];
    seq.pop_back();
    longest = std::max(longest, seq.size());
    ids.push_back(seq);
    labels.push_back(lab);
  }
  const auto n = static_cast<int64_t>(rows.size()), t = static_cast<int64_t>(longest);
  torch::Tensor in = torch::zeros({n, t}, torch::kLong), lab = torch::full({n, t}, -100, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < ids[i].size(); ++j) {
      in[i][static_cast<int64_t>(j)] = ids[i][j];
      lab[i][static_cast<int64_t>(j)] = labels[i][j];
    }
  }
  return {in, lab};
}

// A bigram model: the logits of the next token are one row of a [V, V] table.
torch::Tensor bigram_logits(const torch::Tensor& table, const torch::Tensor& inputs) {
  return table.index_select(0, inputs.reshape({-1})).view({inputs.size(0), inputs.size(1), table.size(1)});
}

void print_table(const std::vector<Pair>& pairs, const prefopt::LossOutput& out, const torch::Tensor& pc,
                 const torch::Tensor& pr) {
  fmt::print("  {:<28} {:<20} {:<20} {:>9} {:>9} {:>9} {:>9} {:>7}\n", "prompt", "chosen", "rejected", "logp(c)",
             "logp(r)", "reward(c)", "reward(r)", "loss");
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    fmt::print("  {:<28} {:<20} {:<20} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.3f} {:>7.4f}\n", pairs[i].prompt,
               pairs[i].chosen, pairs[i].rejected, pc[k].item<double>(), pr[k].item<double>(),
               out.chosen_rewards[k].item<double>(), out.rejected_rewards[k].item<double>(),
               out.losses[k].item<double>());
  }
  fmt::print("  loss {:.4f}", out.loss.item<double>());
  for (const auto& [name, value] : out.metrics) fmt::print(" | {} {:.4f}", name, value.item<double>());
  fmt::print("\n");
}

[[noreturn]] void usage(const std::string& problem) {
  fmt::print(stderr, "prefopt-dpo-demo: {}\nusage: prefopt-dpo-demo [--steps N] [--beta B] [--lr LR] [--json PATH]\n",
             problem);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t steps = 40;
  double beta = 0.5, lr = 0.5;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    try {
      if (arg == "--steps") steps = std::stoll(value());
      else if (arg == "--beta") beta = std::stod(value());
      else if (arg == "--lr") lr = std::stod(value());
      else if (arg == "--json") json_path = value();
      else if (arg == "-h" || arg == "--help") usage("scores preference pairs and takes a few DPO steps");
      else usage(fmt::format("unknown argument '{}'", arg));
    } catch (const std::logic_error&) {
      usage(fmt::format("{} expects a number", arg));
    }
  }
  if (steps < 0) usage(fmt::format("--steps must be >= 0, got {}", steps));

  torch::manual_seed(0);
  Vocabulary vocab;
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& p : kPairs) rows.emplace_back(p.prompt, p.chosen);
  for (const auto& p : kPairs) rows.emplace_back(p.prompt, p.rejected);
  const Encoded batch = encode_batch(vocab, rows);
  const auto n = static_cast<int64_t>(kPairs.size());
  const auto v = static_cast<int64_t>(vocab.words.size());

  const torch::Tensor reference = torch::randn({v, v});
  torch::Tensor policy = reference.clone().requires_grad_();
  prefopt::DPOLoss dpo(prefopt::DPOLossOptions().beta(beta));
  torch::Tensor ref_logps;
  {
    torch::NoGradGuard no_grad;
    ref_logps = prefopt::sequence_logps(bigram_logits(reference, batch.inputs), batch.labels).logps;
  }
  const torch::Tensor ref_c = ref_logps.slice(0, 0, n), ref_r = ref_logps.slice(0, n);

  auto evaluate = [&]() {
    const auto scored = prefopt::sequence_logps(bigram_logits(policy, batch.inputs), batch.labels);
    const torch::Tensor pc = scored.logps.slice(0, 0, n), pr = scored.logps.slice(0, n);
    return std::make_tuple(dpo(pc, pr, ref_c, ref_r), pc, pr);
  };

  spdlog::info("prefopt {} DPO demo: {} pairs, vocabulary {}, beta {}", prefopt::kVersion, n, v, beta);
  auto [before, pc0, pr0] = evaluate();
  fmt::print("\nBefore training (policy = reference, so every reward is 0 and every loss is log 2):\n");
  print_table(kPairs, before, pc0.detach(), pr0.detach());

  for (int64_t step = 1; step <= steps; ++step) {
    auto [out, pc, pr] = evaluate();
    out.loss.backward();
    {
      torch::NoGradGuard no_grad;
      policy -= lr * policy.grad();
      policy.grad().zero_();
    }
    if (step == 1 || step % 10 == 0 || step == steps) {
      spdlog::info("step {:>3}: loss {:.4f}, rewards/accuracies {:.2f}, rewards/margins {:.4f}", step,
                   out.loss.item<double>(), out.metrics.at("rewards/accuracies").item<double>(),
                   out.metrics.at("rewards/margins").item<double>());
    }
  }

  auto [after, pc1, pr1] = evaluate();
  fmt::print("\nAfter {} DPO steps (lr {}):\n", steps, lr);
  print_table(kPairs, after, pc1.detach(), pr1.detach());

  if (!json_path.empty()) {
    nlohmann::json record{{"steps", steps}, {"beta", beta}, {"loss", after.loss.item<double>()}};
    for (const auto& [name, value] : after.metrics) record[name] = value.item<double>();
    const std::string tmp = json_path + ".tmp";
    {
      std::ofstream file(tmp);
      file << record.dump(2) << "\n";
      if (!file) {
        spdlog::error("could not write {}", tmp);
        return 1;
      }
    }
    if (std::rename(tmp.c_str(), json_path.c_str()) != 0) {
      spdlog::error("could not move {} to {}", tmp, json_path);
      return 1;
    }
    spdlog::info("metrics written to {}", json_path);
  }
  return 0;
}
