// Plain double-precision lists for the listwise tests: a batch of B lists of K entries (policy and reference
// scores, labels, a validity mask), random or given, converted to tensors on demand, and the small numeric
// helpers the references need. Nothing here calls the library under test.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <torch/types.h>

namespace prefopt::testing {

inline double log_sigmoid_ref(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

// log(sum exp(v)), stable; -inf for an empty set.
inline double logsumexp_ref(const std::vector<double>& v) {
  if (v.empty()) return -std::numeric_limits<double>::infinity();
  const double m = *std::max_element(v.begin(), v.end());
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

struct Lists {
  int64_t B = 0, K = 0;
  std::vector<double> p, q, y;  // row-major [B, K]
  std::vector<bool> m;

  double P(int64_t b, int64_t k) const { return p[b * K + k]; }
  double Q(int64_t b, int64_t k) const { return q[b * K + k]; }
  double Y(int64_t b, int64_t k) const { return y[b * K + k]; }
  bool M(int64_t b, int64_t k) const { return m[b * K + k]; }

  // Valid indices of list b.
  std::vector<int64_t> valid(int64_t b) const {
    std::vector<int64_t> out;
    for (int64_t k = 0; k < K; ++k)
      if (M(b, k)) out.push_back(k);
    return out;
  }

  torch::Tensor tensor(const std::vector<double>& v, torch::ScalarType dtype = torch::kDouble, bool grad = false) const {
    return torch::tensor(v, torch::kDouble).view({B, K}).to(dtype).requires_grad_(grad);
  }
  torch::Tensor policy(torch::ScalarType dtype = torch::kDouble, bool grad = false) const { return tensor(p, dtype, grad); }
  torch::Tensor ref(torch::ScalarType dtype = torch::kDouble, bool grad = false) const { return tensor(q, dtype, grad); }
  torch::Tensor labels() const { return tensor(y); }
  torch::Tensor mask() const {
    std::vector<double> d(m.begin(), m.end());
    return tensor(d).to(torch::kBool);
  }
};

// Random lists: log-probs around -40, labels integer grades in [0, levels), valid lengths in [min_len, K].
inline Lists random_lists(int64_t B, int64_t K, uint32_t seed, int levels = 4, int64_t min_len = 1) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_int_distribution<int> grade(0, levels - 1);
  std::uniform_int_distribution<int64_t> length(min_len, K);
  Lists l;
  l.B = B;
  l.K = K;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = length(gen);
    for (int64_t k = 0; k < K; ++k) {
      const double q = -40 + 5 * normal(gen);
      l.q.push_back(q);
      l.p.push_back(q + 3 * normal(gen));
      l.y.push_back(grade(gen));
      l.m.push_back(k < n);
    }
  }
  return l;
}

// Entries of list b sorted by key descending, ties by index (a stable sort).
inline std::vector<int64_t> sorted_desc(const std::vector<int64_t>& idx, const std::vector<double>& key) {
  std::vector<int64_t> out = idx;
  std::stable_sort(out.begin(), out.end(), [&](int64_t a, int64_t c) { return key[a] > key[c]; });
  return out;
}

}  // namespace prefopt::testing
