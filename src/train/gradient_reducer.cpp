// Bucketed gradient all-reduce started from post-accumulate-grad hooks (see gradient_reducer.h): readiness per
// bucket, launches in bucket order, a flat buffer per bucket, the mean over the ranks copied back.
#include "gradient_reducer.h"

#include <algorithm>
#include <utility>

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace prefopt::train::detail {

namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(std::function<void()> on_ready) : on_ready_(std::move(on_ready)) {}
  void operator()(const torch::autograd::Variable& /*tensor*/) override { on_ready_(); }
  std::function<void()> on_ready_;
};

}  // namespace

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, ProcessGroup& group, int64_t bucket_bytes)
    : params_(std::move(params)), bucket_of_(params_.size()), group_(group) {
  TORCH_CHECK(bucket_bytes > 0, "gradient reducer: bucket_bytes must be > 0");
  // Buckets in reverse parameter order, one dtype each, about bucket_bytes each.
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& p = params_[k];
    TORCH_CHECK(p.is_leaf() && p.requires_grad(), "gradient reducer: parameter ", k,
                " is not a leaf that requires grad");
    TORCH_CHECK(p.device() == group.device(), "gradient reducer: parameter ", k, " is on ", p.device(),
                ", the process group on ", group.device());
    const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
    const bool new_bucket = buckets_.empty() || bytes + size > bucket_bytes ||
                            params_[buckets_.back().params.front()].scalar_type() != p.scalar_type();
    if (new_bucket) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += size;
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k], std::make_unique<ReadyHook>([this, k] { on_ready(k); }));
  }
}

GradientReducer::~GradientReducer() {
  for (const auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientReducer::set_sync(bool sync) { sync_ = sync; }

void GradientReducer::on_ready(size_t param) {
  if (!sync_) return;
  Bucket& bucket = buckets_[bucket_of_[param]];
  ++bucket.ready;
  if (bucket.ready == static_cast<int64_t>(bucket.params.size())) launch_ready_buckets();
}

void GradientReducer::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() &&
         buckets_[next_bucket_].ready == static_cast<int64_t>(buckets_[next_bucket_].params.size())) {
    launch(buckets_[next_bucket_]);
    ++next_bucket_;
  }
}

void GradientReducer::launch(Bucket& bucket) {
  std::vector<torch::Tensor> pieces;
  pieces.reserve(bucket.params.size());
  for (size_t k : bucket.params) {
    const torch::Tensor& p = params_[k];
    pieces.push_back(p.grad().defined() ? p.grad().detach().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
  }
  bucket.flat = torch::cat(pieces);
  bucket.launched = std::chrono::steady_clock::now();
  bucket.pending = group_.all_reduce_async(bucket.flat);
}

void GradientReducer::finish() {
  const auto backward_end = std::chrono::steady_clock::now();
  // Buckets whose parameters got no gradient this step (or not all of them) start now, in order, on every rank.
  for (auto& bucket : buckets_) bucket.ready = static_cast<int64_t>(bucket.params.size());
  launch_ready_buckets();
  const double world = static_cast<double>(group_.size());
  torch::NoGradGuard no_grad;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::chrono::steady_clock::time_point>> spans;
  for (auto& bucket : buckets_) {
    bucket.pending->wait();
    spans.emplace_back(bucket.launched, std::max(bucket.launched, bucket.pending->completed_at()));
    bucket.pending.reset();
    bucket.flat.div_(world);
    int64_t offset = 0;
    for (size_t k : bucket.params) {
      torch::Tensor& p = params_[k];
      const torch::Tensor mean = bucket.flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(mean);
      } else {
        p.mutable_grad() = mean.clone();
      }
      offset += p.numel();
    }
    bucket.flat = torch::Tensor();
    bucket.ready = 0;
  }
  waited_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - backward_end).count();
  // The union of the buckets' in-flight spans, and its part before the backward ended.
  std::sort(spans.begin(), spans.end());
  communication_seconds_ = hidden_seconds_ = 0;
  auto add = [&](std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    communication_seconds_ += std::chrono::duration<double>(b - a).count();
    if (a < backward_end) hidden_seconds_ += std::chrono::duration<double>(std::min(b, backward_end) - a).count();
  };
  for (size_t i = 0; i < spans.size();) {
    auto [a, b] = spans[i];
    size_t j = i + 1;
    for (; j < spans.size() && spans[j].first <= b; ++j) b = std::max(b, spans[j].second);
    add(a, b);
    i = j;
  }
  next_bucket_ = 0;
}

}  // namespace prefopt::train::detail
