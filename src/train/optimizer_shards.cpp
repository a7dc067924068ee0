// ZeRO stage 1: the partition of the parameters among the ranks, the broadcast of each rank's stepped parameters, and
// the gathering (and splitting) of AdamW's sharded state. Never steps an optimizer.
#include "optimizer_shards.h"

#include <algorithm>
#include <numeric>

#include <c10/util/Exception.h>

namespace prefopt::train::detail {

namespace {

// A broadcast of the parameters stays within this many bytes, so it needs no more than that in extra memory.
constexpr int64_t kBucketBytes = int64_t{64} << 20;

const torch::optim::AdamWOptions& options_of(const torch::optim::AdamW& optimizer) {
  return static_cast<const torch::optim::AdamWOptions&>(optimizer.param_groups().at(0).options());
}

}  // namespace

OptimizerShards::OptimizerShards(std::vector<torch::Tensor> parameters, ProcessGroup& group)
    : parameters_(std::move(parameters)), owner_(parameters_.size(), 0), group_(group) {
  const int64_t world = group_.size();
  TORCH_CHECK(static_cast<int64_t>(parameters_.size()) >= world, "training.shard_optimizer_state: ",
              parameters_.size(), " trainable tensors cannot be shared among ", world,
              " ranks (each keeps the state of one at least); train without it");
  std::vector<size_t> by_size(parameters_.size());
  std::iota(by_size.begin(), by_size.end(), size_t{0});
  std::stable_sort(by_size.begin(), by_size.end(),
                   [&](size_t a, size_t b) { return parameters_[a].numel() > parameters_[b].numel(); });
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  for (const size_t i : by_size) {
    const auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    owner_[i] = static_cast<int64_t>(r);
    load[r] += parameters_[i].numel();
  }
  for (int64_t r = 0; r < world; ++r) {
    Bucket* open = nullptr;
    for (size_t i = 0; i < parameters_.size(); ++i) {
      if (owner_[i] != r) continue;
      const auto& p = parameters_[i];
      const bool fits = open != nullptr && parameters_[open->members[0]].scalar_type() == p.scalar_type() &&
                        (open->numel + p.numel()) * p.element_size() <= kBucketBytes;
      if (!fits) {
        buckets_.push_back({r, {}, 0});
        open = &buckets_.back();
      }
      open->members.push_back(i);
      open->numel += p.numel();
    }
  }
}

std::vector<torch::Tensor> OptimizerShards::owned() const {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (owner_[i] == group_.rank()) out.push_back(parameters_[i]);
  }
  return out;
}

void OptimizerShards::broadcast_parameters() {
  torch::NoGradGuard no_grad;
  for (const auto& bucket : buckets_) {
    const bool mine = bucket.owner == group_.rank();
    std::vector<torch::Tensor> flat(1);
    if (mine) {
      std::vector<torch::Tensor> parts;
      for (const size_t i : bucket.members) parts.push_back(parameters_[i].detach().reshape({-1}));
      flat[0] = torch::cat(parts);
    } else {
      flat[0] = torch::empty({bucket.numel}, parameters_[bucket.members[0]].options());
    }
    group_.broadcast(flat, bucket.owner);
    if (mine) continue;
    int64_t at = 0;
    for (const size_t i : bucket.members) {
      auto p = parameters_[i].detach();
      p.copy_(flat[0].slice(0, at, at + p.numel()).view(p.sizes()));
      at += p.numel();
    }
  }
}

std::unique_ptr<torch::optim::AdamW> OptimizerShards::whole_like(const torch::optim::AdamW& shard) const {
  return std::make_unique<torch::optim::AdamW>(parameters_, options_of(shard));
}

std::unique_ptr<torch::optim::AdamW> OptimizerShards::consolidate(const torch::optim::AdamW& shard, int64_t root) {
  const int64_t rank = group_.rank();
  std::unique_ptr<torch::optim::AdamW> whole = rank == root ? whole_like(shard) : nullptr;
  const bool amsgrad = options_of(shard).amsgrad();
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& p = parameters_[i];
    void* key = p.unsafeGetTensorImpl();
    const int64_t owner = owner_[i];
    const torch::optim::AdamWParamState* state = nullptr;
    if (owner == rank) {
      auto it = shard.state().find(key);
      if (it != shard.state().end()) state = static_cast<const torch::optim::AdamWParamState*>(it->second.get());
    }
    if (owner == root) {
      if (state != nullptr) whole->state()[key] = std::make_unique<torch::optim::AdamWParamState>(*state);
      continue;
    }
    // The owner says whether the parameter has state yet (none before the first step) and its step count, then
    // sends its moments.
    std::vector<torch::Tensor> header{state != nullptr ? torch::tensor({int64_t{1}, state->step()}, torch::kLong)
                                                       : torch::zeros({2}, torch::kLong)};
    header[0] = header[0].to(group_.device());
    group_.broadcast(header, owner);
    const torch::Tensor h = header[0].cpu();
    if (h[0].item<int64_t>() == 0) continue;
    const int64_t moments = amsgrad ? 3 : 2;
    std::vector<torch::Tensor> values(1);
    if (state != nullptr) {
      std::vector<torch::Tensor> parts{state->exp_avg(), state->exp_avg_sq()};
      if (amsgrad) parts.push_back(state->max_exp_avg_sq());
      values[0] = torch::stack(parts);
    } else {
      std::vector<int64_t> shape{moments};
      for (const int64_t d : p.sizes()) shape.push_back(d);
      values[0] = torch::empty(shape, p.options());
    }
    group_.broadcast(values, owner);
    if (rank != root) continue;
    auto received = std::make_unique<torch::optim::AdamWParamState>();
    received->step(h[1].item<int64_t>());
    received->exp_avg(values[0][0].clone());
    received->exp_avg_sq(values[0][1].clone());
    if (amsgrad) received->max_exp_avg_sq(values[0][2].clone());
    whole->state()[key] = std::move(received);
  }
  return whole;
}

void OptimizerShards::take_state(const torch::optim::AdamW& whole, torch::optim::AdamW& shard) const {
  shard.state().clear();
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (owner_[i] != group_.rank()) continue;
    void* key = parameters_[i].unsafeGetTensorImpl();
    auto it = whole.state().find(key);
    if (it != whole.state().end()) shard.state()[key] = it->second->clone();
  }
  // The rate and the other options the checkpoint recorded.
  shard.param_groups().at(0).set_options(whole.param_groups().at(0).options().clone());
}

}  // namespace prefopt::train::detail
