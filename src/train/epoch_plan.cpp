// The seeded epoch order, its micro-batches (fixed size or token budget) and the step count of a run.
#include "epoch_plan.h"

#include <algorithm>
#include <numeric>

#include <prefopt/data/packing.h>

namespace prefopt::train::detail {

MicroBatches split(int64_t n, int64_t bs, bool no_singletons) {
  MicroBatches out;
  for (int64_t begin = 0; begin < n; begin += bs) out.emplace_back(begin, std::min(n, begin + bs));
  if (no_singletons && out.size() >= 2 && out.back().second - out.back().first == 1) {
    out.pop_back();
    out.back().second = n;
  }
  return out;
}

std::vector<int64_t> packed_token_counts(const Dataset& data) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(data.size()));
  auto add = [&](const auto& examples) {
    for (const auto& e : examples) out.push_back(data::packed_token_count(e));
  };
  add(data.pairs);
  add(data.lists);
  add(data.unpaired);
  add(data.completions);
  add(data.joint);
  return out;
}

std::vector<int64_t> shuffled_order(int64_t n, bool shuffle, std::mt19937_64& rng) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    for (int64_t i = n - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
      std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
    }
  }
  return order;
}

MicroBatches plan_micro_batches(const std::vector<int64_t>& order, const BatchPlan& plan) {
  const auto n = static_cast<int64_t>(order.size());
  if (plan.max_tokens <= 0) return split(n, plan.batch_size, plan.no_singletons);
  std::vector<int64_t> tokens;
  tokens.reserve(order.size());
  for (auto i : order) tokens.push_back(plan.tokens[static_cast<size_t>(i)]);
  MicroBatches out = data::token_budget_batches(tokens, plan.max_tokens);
  if (!plan.no_singletons) return out;
  // A batch of one joins the next one (the last one joins the one before).
  MicroBatches merged;
  for (size_t i = 0; i < out.size(); ++i) {
    const bool single = out[i].second - out[i].first == 1;
    if (single && i + 1 < out.size()) {
      out[i + 1].first = out[i].first;
    } else if (single && !merged.empty()) {
      merged.back().second = out[i].second;
    } else {
      merged.push_back(out[i]);
    }
  }
  return merged;
}

int64_t count_steps(int64_t n, bool shuffle, std::mt19937_64 rng, const BatchPlan& plan, int64_t accumulation,
                    int64_t epochs, int64_t max_steps) {
  if (max_steps > 0) return max_steps;
  auto steps_of = [&](const MicroBatches& m) {
    return (static_cast<int64_t>(m.size()) + accumulation - 1) / accumulation;
  };
  if (plan.max_tokens <= 0) return steps_of(split(n, plan.batch_size, plan.no_singletons)) * epochs;
  int64_t steps = 0;
  for (int64_t e = 0; e < epochs; ++e) steps += steps_of(plan_micro_batches(shuffled_order(n, shuffle, rng), plan));
  return steps;
}

}  // namespace prefopt::train::detail
