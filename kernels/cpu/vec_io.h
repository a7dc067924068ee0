// Loads and stores of the CPU row loops: a step of two at::vec::Vectorized registers of the accumulation
// type, read from (or written to) the tensor's own dtype. bf16/fp16 are widened to fp32 in registers, so no
// upcast copy of a row ever exists. Only the capability_*.cpp files include this (with CPU_CAPABILITY set).
#pragma once

#ifndef CPU_CAPABILITY
#error "vec_io.h is compiled by the capability_*.cpp files only, with CPU_CAPABILITY defined"
#endif

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace prefopt::kernels::cpu {
namespace CPU_CAPABILITY {

template <typename scalar_t>
struct VecIO;

template <typename T>
struct VecIOSame {
  using acc_t = T;
  using Vec = at::vec::Vectorized<T>;
  static constexpr int64_t kWidth = Vec::size();
  static constexpr int64_t kStep = 2 * kWidth;
  static void load2(const T* p, Vec& a, Vec& b) {
    a = Vec::loadu(p);
    b = Vec::loadu(p + kWidth);
  }
  static void store2(T* p, const Vec& a, const Vec& b) {
    a.store(p);
    b.store(p + kWidth);
  }
};

template <>
struct VecIO<float> : VecIOSame<float> {};
template <>
struct VecIO<double> : VecIOSame<double> {};

template <>
struct VecIO<c10::BFloat16> {
  using acc_t = float;
  using Vec = at::vec::Vectorized<float>;
  static constexpr int64_t kWidth = Vec::size();
  static constexpr int64_t kStep = 2 * kWidth;
  static void load2(const c10::BFloat16* p, Vec& a, Vec& b) { at::vec::load_fp32_from_bf16(p, a, b); }
  static void store2(c10::BFloat16* p, const Vec& a, const Vec& b) {
    at::vec::convert_float_bfloat16(a, b).store(p);
  }
};

template <>
struct VecIO<c10::Half> {
  using acc_t = float;
  using Vec = at::vec::Vectorized<float>;
  static constexpr int64_t kWidth = Vec::size();
  static constexpr int64_t kStep = 2 * kWidth;
  static void load2(const c10::Half* p, Vec& a, Vec& b) { at::vec::load_fp32_from_fp16(p, a, b); }
  static void store2(c10::Half* p, const Vec& a, const Vec& b) { at::vec::convert_float_half(a, b).store(p); }
};

// exp for the forward sums (LSE, entropy, KL, WPO): ATen's exp_u20, a short polynomial within 20 ulp
// (~2.4e-6 relative) for fp32, which halves the forward's arithmetic; fp64 and the DEFAULT build fall back to the
// 1-ulp exp. The backward keeps the 1-ulp exp (fexp): its outputs are written element by element. A NaN logit still
// reaches every output through the block max (or the logit itself), never through this exp.
template <typename Vec>
Vec exp_sum(const Vec& x) {
  return x.exp_u20();
}

// Horizontal reductions of one register.
template <typename Vec>
typename Vec::value_type hmax(const Vec& v) {
  alignas(64) typename Vec::value_type tmp[Vec::size()];
  v.store(tmp);
  typename Vec::value_type m = tmp[0];
  for (int64_t k = 1; k < Vec::size(); ++k) {
    // NaN propagates, as in at::vec::maximum.
    if (tmp[k] != tmp[k] || tmp[k] > m) m = tmp[k];
  }
  return m;
}

template <typename Vec>
typename Vec::value_type hsum(const Vec& v) {
  alignas(64) typename Vec::value_type tmp[Vec::size()];
  v.store(tmp);
  typename Vec::value_type s = 0;
  for (int64_t k = 0; k < Vec::size(); ++k) s += tmp[k];
  return s;
}

// Elements per block of the blockwise one-pass loops: a block is read from memory once (the max pass)
// and again from L1 (the exp pass), so memory traffic stays one read per row.
constexpr int64_t kRowBlock = 2048;

// Max of x over [begin, end) of a row (NaN propagates); -inf for an empty range.
template <typename scalar_t>
typename VecIO<scalar_t>::acc_t block_max(const scalar_t* row, int64_t begin, int64_t end) {
  using IO = VecIO<scalar_t>;
  using acc_t = typename IO::acc_t;
  using Vec = typename IO::Vec;
  Vec ma(-INFINITY), mb(-INFINITY);
  int64_t j = begin;
  for (; j + IO::kStep <= end; j += IO::kStep) {
    Vec a, b;
    IO::load2(row + j, a, b);
    ma = at::vec::maximum(ma, a);
    mb = at::vec::maximum(mb, b);
  }
  acc_t m = hmax(at::vec::maximum(ma, mb));
  for (; j < end; ++j) {
    const acc_t x = static_cast<acc_t>(row[j]);
    if (x != x || x > m) m = x;
  }
  return m;
}

// block_max for a bf16/fp16 row that also writes the block, widened, to out[0, end - begin).
template <typename scalar_t>
typename VecIO<scalar_t>::acc_t widen_block_max(const scalar_t* row, int64_t begin, int64_t end,
                                                typename VecIO<scalar_t>::acc_t* out) {
  using IO = VecIO<scalar_t>;
  using acc_t = typename IO::acc_t;
  using Vec = typename IO::Vec;
  Vec ma(-INFINITY), mb(-INFINITY);
  int64_t j = begin;
  for (; j + IO::kStep <= end; j += IO::kStep) {
    Vec a, b;
    IO::load2(row + j, a, b);
    a.store(out + (j - begin));
    b.store(out + (j - begin) + IO::kWidth);
    ma = at::vec::maximum(ma, a);
    mb = at::vec::maximum(mb, b);
  }
  acc_t m = hmax(at::vec::maximum(ma, mb));
  for (; j < end; ++j) {
    const acc_t x = static_cast<acc_t>(row[j]);
    out[j - begin] = x;
    if (x != x || x > m) m = x;
  }
  return m;
}

}  // namespace CPU_CAPABILITY
}  // namespace prefopt::kernels::cpu
