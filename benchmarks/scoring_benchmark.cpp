// CPU benchmark of the fused scoring kernels against the ATen composite a user would write, on the same inputs:
//   token_logps fwd and fwd+bwd (fused, fused with the in-place backward, log_softmax + gather with autograd) at
//   N=4096,V=32000 and N=1024,V=128256 in fp32 and bf16, with a plain logits.sum() over the same tensor as the
//   memory-read floor; and fused_linear_logps fwd+bwd peak memory against the unchunked hidden @ weight^T path at
//   N=4096, H=1024, V=128256.
// Every variant's result is validated against the composite before anything is timed. Peak memory is measured
// by a counting allocator installed as the c10 CPU allocator (every ATen CPU tensor allocation goes through it;
// oneDNN/MKL scratch buffers that bypass c10 are not counted): bytes allocated above the level before the call,
// including outputs and gradients. Never a test: tests/ holds no timed assertions.
#include <benchmark/benchmark.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "kernels/cpu/capability.h"
#include "kernels/token_logps.h"
#include <prefopt/scoring.h>

namespace {

// ---- counting allocator -------------------------------------------------------------------------------------

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr inner_ptr = inner_->allocate(n);
    void* data = inner_ptr.get();
    auto* ctx = new Context{std::move(inner_ptr), n, this};
    const int64_t now = current_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return {data, ctx, &Context::release, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  void reset_peak() { peak_.store(current_.load()); }
  int64_t current() const { return current_.load(); }
  int64_t peak() const { return peak_.load(); }

 private:
  struct Context {
    c10::DataPtr ptr;
    size_t bytes;
    CountingAllocator* owner;
    static void release(void* p) {
      auto* ctx = static_cast<Context*>(p);
      ctx->owner->current_.fetch_sub(static_cast<int64_t>(ctx->bytes));
      delete ctx;
    }
  };
  c10::Allocator* inner_;
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
};

CountingAllocator* g_alloc = nullptr;

// Peak bytes allocated by fn above the level before it (its outputs included).
template <typename F>
double peak_mib(F&& fn) {
  const int64_t before = g_alloc->current();
  g_alloc->reset_peak();
  fn();
  return static_cast<double>(g_alloc->peak() - before) / (1024.0 * 1024.0);
}

// ---- inputs ---------------------------------------------------------------------------------------------------

struct Shape {
  int64_t n, v;
  at::ScalarType dtype;
};

std::string dtype_name(at::ScalarType t) { return t == at::kBFloat16 ? "bf16" : "fp32"; }
std::string shape_name(const Shape& s) {
  return "N=" + std::to_string(s.n) + "/V=" + std::to_string(s.v) + "/" + dtype_name(s.dtype);
}

struct Inputs {
  at::Tensor logits, labels, grad, work;
};

std::map<std::string, Inputs>& inputs_cache() {
  static std::map<std::string, Inputs> cache;
  return cache;
}

const Inputs& inputs_for(const Shape& s) {
  auto& cache = inputs_cache();
  const std::string key = shape_name(s);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  cache.clear();  // one shape's tensors alive at a time
  at::manual_seed(0);
  Inputs in;
  in.logits = (at::randn({s.n, s.v}) * 3).to(s.dtype);
  in.labels = at::randint(s.v, {s.n}, at::kLong);
  in.grad = at::randn({s.n});
  in.work = at::empty_like(in.logits);
  return cache.emplace(key, std::move(in)).first->second;
}

// ---- the variants ---------------------------------------------------------------------------------------------

at::Tensor composite_logps(const at::Tensor& logits, const at::Tensor& labels) {
  return at::log_softmax(logits, -1).gather(1, labels.unsqueeze(1)).squeeze(1);
}

void run_sum(const Inputs& in) { benchmark::DoNotOptimize(in.logits.sum().item<float>()); }

void run_fused_fwd(const Inputs& in) {
  benchmark::DoNotOptimize(std::get<0>(prefopt::ops::token_logps(in.logits, in.labels, -100, 1.0)).data_ptr());
}

void run_composite_fwd(const Inputs& in) {
  at::NoGradGuard no_grad;
  benchmark::DoNotOptimize(composite_logps(in.logits, in.labels).data_ptr());
}

at::Tensor run_fused_fwd_bwd(const Inputs& in) {
  at::Tensor x = in.logits.detach().requires_grad_();
  prefopt::token_logps(x, in.labels).backward(in.grad);
  return x.grad();
}

at::Tensor run_composite_fwd_bwd(const Inputs& in) {
  at::Tensor x = in.logits.detach().requires_grad_();
  composite_logps(x, in.labels).to(at::kFloat).backward(in.grad);
  return x.grad();
}

// Forward, then the in-place backward over a working copy of the logits (the copy is refreshed outside the
// timed region, as a model's fresh logits would be).
at::Tensor run_fused_fwd_bwd_inplace(const Inputs& in) {
  auto [logps, lse] = prefopt::ops::token_logps(in.work, in.labels, -100, 1.0);
  prefopt::ops::detail::token_logps_backward_inplace(in.grad, in.work, in.labels, lse, -100, 1.0);
  benchmark::DoNotOptimize(logps.data_ptr());
  return in.work;
}

// ---- validation (before any timing) ---------------------------------------------------------------------------

void validate(const Shape& s) {
  const Inputs& in = inputs_for(s);
  // A subset of rows keeps the float64 reference cheap: log p and its gradient g (onehot - softmax).
  const int64_t rows = std::min<int64_t>(s.n, 64);
  const at::Tensor z = in.logits.narrow(0, 0, rows).to(at::kDouble);
  const at::Tensor lab = in.labels.narrow(0, 0, rows);
  const at::Tensor ref = composite_logps(z, lab);
  const at::Tensor ref_grad =
      in.grad.narrow(0, 0, rows).to(at::kDouble).unsqueeze(1) *
      (at::zeros_like(z).scatter_(1, lab.unsqueeze(1), 1.0) - at::softmax(z, -1));
  const at::Tensor fused = std::get<0>(prefopt::ops::token_logps(in.logits, in.labels, -100, 1.0)).narrow(0, 0, rows);
  const double err = (fused.to(at::kDouble) - ref).abs().max().item<double>();
  auto grad_err = [&](const at::Tensor& g) {
    return (g.narrow(0, 0, rows).to(at::kDouble) - ref_grad).abs().max().item<double>();
  };
  const double gerr = grad_err(run_fused_fwd_bwd(in));
  const double cerr = grad_err(run_composite_fwd_bwd(in));
  in.work.copy_(in.logits);
  const at::Tensor g_inplace = run_fused_fwd_bwd_inplace(in);
  const bool same_inplace = at::equal(run_fused_fwd_bwd(in), g_inplace);
  // The gradient comes back in the logits' dtype: one rounding of values up to |g| ~ 4.
  const double tol = s.dtype == at::kBFloat16 ? 4.0 * std::ldexp(1.0, -8) : 4e-6;
  std::fprintf(stderr,
               "validate %s: logps |fused - fp64| = %.3g; grad |fused - fp64| = %.3g (composite %.3g); in-place %s\n",
               shape_name(s).c_str(), err, gerr, cerr, same_inplace ? "identical" : "DIFFERS");
  if (!(err < 1e-4) || !(gerr < tol) || !same_inplace) {
    std::fprintf(stderr, "validation failed for %s\n", shape_name(s).c_str());
    std::exit(1);
  }
}

// ---- registration ---------------------------------------------------------------------------------------------

std::map<std::string, double>& floor_seconds() {
  static std::map<std::string, double> m;
  return m;
}

double seconds_of_sum(const Shape& s) {
  const Inputs& in = inputs_for(s);
  run_sum(in);
  std::vector<double> t;
  for (int i = 0; i < 15; ++i) {
    const auto a = std::chrono::steady_clock::now();
    run_sum(in);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

enum class Kind { kSum, kFusedFwd, kCompositeFwd, kFusedFwdBwd, kFusedFwdBwdInplace, kCompositeFwdBwd };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kSum: return "sum_floor";
    case Kind::kFusedFwd: return "fused_fwd";
    case Kind::kCompositeFwd: return "composite_fwd";
    case Kind::kFusedFwdBwd: return "fused_fwd_bwd";
    case Kind::kFusedFwdBwdInplace: return "fused_fwd_bwd_inplace";
    default: return "composite_fwd_bwd";
  }
}

void run_kind(Kind k, const Inputs& in) {
  switch (k) {
    case Kind::kSum: return run_sum(in);
    case Kind::kFusedFwd: return run_fused_fwd(in);
    case Kind::kCompositeFwd: return run_composite_fwd(in);
    case Kind::kFusedFwdBwd: benchmark::DoNotOptimize(run_fused_fwd_bwd(in).data_ptr()); return;
    case Kind::kFusedFwdBwdInplace: benchmark::DoNotOptimize(run_fused_fwd_bwd_inplace(in).data_ptr()); return;
    default: benchmark::DoNotOptimize(run_composite_fwd_bwd(in).data_ptr()); return;
  }
}

void bench(benchmark::State& state, Shape s, Kind k) {
  const Inputs& in = inputs_for(s);
  const bool inplace = k == Kind::kFusedFwdBwdInplace;
  if (inplace) in.work.copy_(in.logits);
  const double mem = peak_mib([&] { run_kind(k, in); });
  double total = 0;
  for (auto _ : state) {
    if (inplace) {
      state.PauseTiming();
      in.work.copy_(in.logits);
      state.ResumeTiming();
    }
    const auto a = std::chrono::steady_clock::now();
    run_kind(k, in);
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
  }
  const double bytes = static_cast<double>(in.logits.numel()) * in.logits.element_size();
  // fwd and the sum read the logits once; fwd+bwd reads them twice and writes the gradient once.
  const double passes = (k == Kind::kSum || k == Kind::kFusedFwd || k == Kind::kCompositeFwd) ? 1.0 : 3.0;
  state.SetBytesProcessed(static_cast<int64_t>(bytes * passes * state.iterations()));
  state.counters["x_sum_floor"] = (total / state.iterations()) / floor_seconds()[shape_name(s)];
  state.counters["peak_MiB"] = mem;
}

// fused_linear_logps vs the unchunked path, peak memory of one fwd+bwd (time reported too).
void bench_fused_linear(benchmark::State& state, bool fused, at::ScalarType dtype) {
  const int64_t n = 4096, h = 1024, v = 128256;
  at::manual_seed(0);
  const at::Tensor hidden0 = (at::randn({n, h}) / 8).to(dtype), weight0 = (at::randn({v, h}) / 8).to(dtype);
  const at::Tensor labels = at::randint(v, {n}, at::kLong);
  double mem = 0;
  for (auto _ : state) {
    at::Tensor hidden = hidden0.detach().requires_grad_(), weight = weight0.detach().requires_grad_();
    mem = std::max(mem, peak_mib([&] {
      if (fused) {
        prefopt::fused_linear_logps(hidden, weight, labels).sum().backward();
      } else {
        at::log_softmax(at::mm(hidden, weight.t()), -1).gather(1, labels.unsqueeze(1)).sum().backward();
      }
    }));
    benchmark::DoNotOptimize(weight.grad().data_ptr());
  }
  state.counters["peak_MiB"] = mem;
}

void validate_fused_linear() {
  at::manual_seed(1);
  const at::Tensor hidden = at::randn({256, 64}, at::kDouble) / 4, weight = at::randn({5000, 64}, at::kDouble);
  const at::Tensor labels = at::randint(5000, {256}, at::kLong);
  const at::Tensor a = prefopt::fused_linear_logps(hidden, weight, labels, prefopt::FusedLinearLogpsOptions().chunk_bytes(1 << 16));
  const at::Tensor b = at::log_softmax(at::mm(hidden, weight.t()), -1).gather(1, labels.unsqueeze(1)).squeeze(1);
  const double err = (a - b).abs().max().item<double>();
  std::fprintf(stderr, "validate fused_linear_logps: |fused - composite| = %.3g\n", err);
  if (!(err < 1e-10)) std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  static CountingAllocator counting(c10::GetDefaultCPUAllocator());
  g_alloc = &counting;
  c10::SetCPUAllocator(&counting, /*priority=*/100);
  std::fprintf(stderr, "prefopt CPU kernels: %s (best available %s), ATen threads %d\n",
               prefopt::kernels::cpu::cpu_capability_name(prefopt::kernels::cpu::cpu_capability()).c_str(),
               prefopt::kernels::cpu::cpu_capability_name(prefopt::kernels::cpu::max_cpu_capability()).c_str(),
               at::get_num_threads());

  const std::vector<Shape> shapes = {{4096, 32000, at::kFloat}, {4096, 32000, at::kBFloat16},
                                     {1024, 128256, at::kFloat}, {1024, 128256, at::kBFloat16}};
  for (const Shape& s : shapes) {
    validate(s);
    floor_seconds()[shape_name(s)] = seconds_of_sum(s);
  }
  validate_fused_linear();
  for (const Shape& s : shapes) {
    for (Kind k : {Kind::kSum, Kind::kFusedFwd, Kind::kCompositeFwd, Kind::kFusedFwdBwd, Kind::kFusedFwdBwdInplace,
                   Kind::kCompositeFwdBwd}) {
      benchmark::RegisterBenchmark((std::string("token_logps/") + kind_name(k) + "/" + shape_name(s)).c_str(),
                                   [s, k](benchmark::State& st) { bench(st, s, k); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(1.0);
    }
  }
  for (bool fused : {true, false}) {
    benchmark::RegisterBenchmark(
        (std::string("fused_linear_logps/") + (fused ? "chunked" : "unchunked") + "/N=4096/H=1024/V=128256/fp32").c_str(),
        [fused](benchmark::State& st) { bench_fused_linear(st, fused, at::kFloat); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(1);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
