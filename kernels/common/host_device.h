// Portability macros and math overloads for code that both the CPU kernels (g++) and the CUDA kernels
// (nvcc) compile, so one definition of a row's math serves both. Holds no math of its own.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PREFOPT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PREFOPT_HOST_DEVICE inline
#endif

#include <float.h>
#include <math.h>

namespace prefopt::kernels {

// Overloads instead of std:: calls: nvcc has device versions of the C functions, not of std::exp.
PREFOPT_HOST_DEVICE float fexp(float x) { return ::expf(x); }
PREFOPT_HOST_DEVICE double fexp(double x) { return ::exp(x); }
PREFOPT_HOST_DEVICE float flog(float x) { return ::logf(x); }
PREFOPT_HOST_DEVICE double flog(double x) { return ::log(x); }
PREFOPT_HOST_DEVICE float flog1p(float x) { return ::log1pf(x); }
PREFOPT_HOST_DEVICE double flog1p(double x) { return ::log1p(x); }
PREFOPT_HOST_DEVICE float fabs_(float x) { return ::fabsf(x); }
PREFOPT_HOST_DEVICE double fabs_(double x) { return ::fabs(x); }

// CPU vector types (at::vec::Vectorized) carry exp as a member. The scalar overloads above are exact
// matches for float and double, so this template only ever serves vector types, and only on the host.
template <typename V>
inline V fexp(const V& x) {
  return x.exp();
}

template <typename T>
PREFOPT_HOST_DEVICE T neg_infinity() { return -static_cast<T>(INFINITY); }

// The most negative finite value: used to keep 0 * (-inf) from turning into NaN in p * log p terms.
template <typename T>
PREFOPT_HOST_DEVICE T lowest_finite();
template <>
PREFOPT_HOST_DEVICE float lowest_finite<float>() { return -FLT_MAX; }
template <>
PREFOPT_HOST_DEVICE double lowest_finite<double>() { return -DBL_MAX; }

}  // namespace prefopt::kernels
