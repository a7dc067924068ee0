// Row traversal for the CUDA kernels: the threads of a block visit every element of one (or two, or an input
// and an output) row(s) with 16-byte vector loads/stores where the rows are equally aligned (a scalar head up to
// the first aligned element, the aligned body, a scalar tail), and plain strided access otherwise. Offsets are
// int64. Visit order within a thread is irrelevant to the callers (they fold into order-free row states).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace prefopt::kernels::cuda {

template <typename T, int N>
struct alignas(16) Pack {
  T v[N];
};

template <typename scalar_t>
constexpr int pack_size() {
  return 16 / sizeof(scalar_t) > 0 ? static_cast<int>(16 / sizeof(scalar_t)) : 1;
}

// Elements before the first 16-byte boundary of p; -1 when p is not even element-aligned.
template <typename scalar_t>
__device__ __forceinline__ int64_t head_elements(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a % sizeof(scalar_t) != 0) return -1;
  return static_cast<int64_t>(((16 - a % 16) % 16) / sizeof(scalar_t));
}

// f(j, x) for every j in [0, n) of row.
template <int kThreads, typename scalar_t, typename F>
__device__ __forceinline__ void for_each_element(const scalar_t* row, int64_t n, F&& f) {
  constexpr int kVec = pack_size<scalar_t>();
  int64_t head = head_elements<scalar_t>(row);
  if (head < 0 || head > n) head = n;
  for (int64_t j = threadIdx.x; j < head; j += kThreads) f(j, row[j]);
  const int64_t packs = (n - head) / kVec;
  const auto* body = reinterpret_cast<const Pack<scalar_t, kVec>*>(row + head);
  for (int64_t k = threadIdx.x; k < packs; k += kThreads) {
    const Pack<scalar_t, kVec> pk = body[k];
#pragma unroll
    for (int u = 0; u < kVec; ++u) f(head + k * kVec + u, pk.v[u]);
  }
  for (int64_t j = head + packs * kVec + threadIdx.x; j < n; j += kThreads) f(j, row[j]);
}

// f(j, a_j, b_j) for every j of two rows (vector loads when both rows share their alignment).
template <int kThreads, typename scalar_t, typename F>
__device__ __forceinline__ void for_each_element2(const scalar_t* a, const scalar_t* b, int64_t n, F&& f) {
  constexpr int kVec = pack_size<scalar_t>();
  int64_t head = head_elements<scalar_t>(a);
  if (head < 0 || head != head_elements<scalar_t>(b) || head > n) head = n;
  for (int64_t j = threadIdx.x; j < head; j += kThreads) f(j, a[j], b[j]);
  const int64_t packs = (n - head) / kVec;
  const auto* pa = reinterpret_cast<const Pack<scalar_t, kVec>*>(a + head);
  const auto* pb = reinterpret_cast<const Pack<scalar_t, kVec>*>(b + head);
  for (int64_t k = threadIdx.x; k < packs; k += kThreads) {
    const Pack<scalar_t, kVec> xa = pa[k];
    const Pack<scalar_t, kVec> xb = pb[k];
#pragma unroll
    for (int u = 0; u < kVec; ++u) f(head + k * kVec + u, xa.v[u], xb.v[u]);
  }
  for (int64_t j = head + packs * kVec + threadIdx.x; j < n; j += kThreads) f(j, a[j], b[j]);
}

// out[j] = f(j, in[j]) for every j; out may alias in (each element is read, then written, by one thread).
template <int kThreads, typename scalar_t, typename F>
__device__ __forceinline__ void transform_row(const scalar_t* in, scalar_t* out, int64_t n, F&& f) {
  constexpr int kVec = pack_size<scalar_t>();
  int64_t head = head_elements<scalar_t>(in);
  if (head < 0 || head != head_elements<scalar_t>(out) || head > n) head = n;
  for (int64_t j = threadIdx.x; j < head; j += kThreads) out[j] = static_cast<scalar_t>(f(j, in[j]));
  const int64_t packs = (n - head) / kVec;
  const auto* pi = reinterpret_cast<const Pack<scalar_t, kVec>*>(in + head);
  auto* po = reinterpret_cast<Pack<scalar_t, kVec>*>(out + head);
  for (int64_t k = threadIdx.x; k < packs; k += kThreads) {
    const Pack<scalar_t, kVec> x = pi[k];
    Pack<scalar_t, kVec> y;
#pragma unroll
    for (int u = 0; u < kVec; ++u) y.v[u] = static_cast<scalar_t>(f(head + k * kVec + u, x.v[u]));
    po[k] = y;
  }
  for (int64_t j = head + packs * kVec + threadIdx.x; j < n; j += kThreads) out[j] = static_cast<scalar_t>(f(j, in[j]));
}

// out[j] = f(j, a[j], b[j]) for every j.
template <int kThreads, typename scalar_t, typename F>
__device__ __forceinline__ void transform_row2(const scalar_t* a, const scalar_t* b, scalar_t* out, int64_t n, F&& f) {
  constexpr int kVec = pack_size<scalar_t>();
  int64_t head = head_elements<scalar_t>(a);
  if (head < 0 || head != head_elements<scalar_t>(b) || head != head_elements<scalar_t>(out) || head > n) head = n;
  for (int64_t j = threadIdx.x; j < head; j += kThreads) out[j] = static_cast<scalar_t>(f(j, a[j], b[j]));
  const int64_t packs = (n - head) / kVec;
  const auto* pa = reinterpret_cast<const Pack<scalar_t, kVec>*>(a + head);
  const auto* pb = reinterpret_cast<const Pack<scalar_t, kVec>*>(b + head);
  auto* po = reinterpret_cast<Pack<scalar_t, kVec>*>(out + head);
  for (int64_t k = threadIdx.x; k < packs; k += kThreads) {
    const Pack<scalar_t, kVec> xa = pa[k];
    const Pack<scalar_t, kVec> xb = pb[k];
    Pack<scalar_t, kVec> y;
#pragma unroll
    for (int u = 0; u < kVec; ++u) y.v[u] = static_cast<scalar_t>(f(head + k * kVec + u, xa.v[u], xb.v[u]));
    po[k] = y;
  }
  for (int64_t j = head + packs * kVec + threadIdx.x; j < n; j += kThreads) {
    out[j] = static_cast<scalar_t>(f(j, a[j], b[j]));
  }
}

// Rows of a vocabulary up to this size get one warp per block; larger ones 256 threads.
constexpr int64_t kWarpRowMaxVocab = 1024;

}  // namespace prefopt::kernels::cuda
