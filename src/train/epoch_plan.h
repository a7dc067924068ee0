// An epoch's plan: the seeded order of the training examples and its micro-batches (batch_size examples each, or
// as many as fit a token budget), and the run's step count that follows. Private to src/train; never reads a
// tensor, never runs a model.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include <prefopt/train/dataset.h>

namespace prefopt::train::detail {

using MicroBatches = std::vector<std::pair<int64_t, int64_t>>;  // [begin, end) positions in the epoch's order

/// How micro-batches are cut.
struct BatchPlan {
  int64_t batch_size = 1;
  /// > 0: a token budget per micro-batch instead of batch_size (tokens[i]: example i's packed token count).
  int64_t max_tokens = 0;
  std::vector<int64_t> tokens;
  /// KTO pairs examples within a micro-batch: no micro-batch of one example when the data hold two or more.
  bool no_singletons = false;
};

/// n examples in batches of bs; a trailing batch of one joins the one before when no_singletons.
MicroBatches split(int64_t n, int64_t bs, bool no_singletons);

/// Each example's packed token count (data/packing.h), in dataset order.
std::vector<int64_t> packed_token_counts(const Dataset& data);

/// 0..n-1, Fisher-Yates shuffled with the raw output of `rng` when shuffle (so the order depends only on the
/// engine, which the standard fixes, not on a library's distribution implementation).
std::vector<int64_t> shuffled_order(int64_t n, bool shuffle, std::mt19937_64& rng);

/// The micro-batches of an epoch taken in `order`.
MicroBatches plan_micro_batches(const std::vector<int64_t>& order, const BatchPlan& plan);

/// The run's optimizer steps: max_steps when > 0, else the sum over epochs of ceil(micro-batches / accumulation).
/// With a token budget each epoch's count follows its own order, drawn ahead from a copy of `rng`.
int64_t count_steps(int64_t n, bool shuffle, std::mt19937_64 rng, const BatchPlan& plan, int64_t accumulation,
                    int64_t epochs, int64_t max_steps);

}  // namespace prefopt::train::detail
