// Portability macros and math overloads for code that both the CPU kernels (g++) and the CUDA kernels
// (nvcc) compile, so one definition of a row's math serves both. Holds no math of its own.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PREFOPT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PREFOPT_HOST_DEVICE inline
#endif

#include <math.h>

namespace prefopt::kernels {

// Overloads instead of std:: calls: nvcc has device versions of the C functions, not of std::exp.
PREFOPT_HOST_DEVICE float fexp(float x) { return ::expf(x); }
PREFOPT_HOST_DEVICE double fexp(double x) { return ::exp(x); }
PREFOPT_HOST_DEVICE float flog(float x) { return ::logf(x); }
PREFOPT_HOST_DEVICE double flog(double x) { return ::log(x); }

template <typename T>
PREFOPT_HOST_DEVICE T neg_infinity() { return -static_cast<T>(INFINITY); }

}  // namespace prefopt::kernels
