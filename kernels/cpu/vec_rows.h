// Declarations of the vectorised CPU row loops, one set per instruction set (namespaces DEFAULT, AVX2,
// AVX512, defined by the capability_*.cpp files), and PREFOPT_CPU_ROWS, which calls the set that
// cpu_capability() names. The operators' CPU kernels (cpu/<op>_kernel.cpp) fill a params struct and call
// through it; they never include vector code, so they compile without vector flags.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../common/token_entropy.h"
#include "../common/token_kl.h"
#include "../common/token_logps.h"
#include "../common/wpo_token_stats.h"
#include "capability.h"

namespace prefopt::kernels::cpu {

#define PREFOPT_DECLARE_CPU_ROWS(CAP)                                                        \
  namespace CAP {                                                                            \
  template <typename scalar_t, typename acc_t>                                               \
  void token_logps_forward(const TokenLogpsParams<scalar_t, acc_t>& p);                      \
  template <typename scalar_t, typename acc_t>                                               \
  void token_logps_backward(const TokenLogpsBackwardParams<scalar_t, acc_t>& p);             \
  template <typename scalar_t, typename acc_t>                                               \
  void token_kl_forward(const TokenKlParams<scalar_t, acc_t>& p);                            \
  template <typename scalar_t, typename acc_t>                                               \
  void token_kl_backward(const TokenKlBackwardParams<scalar_t, acc_t>& p);                   \
  template <typename scalar_t, typename acc_t>                                               \
  void token_entropy_forward(const TokenEntropyParams<scalar_t, acc_t>& p);                  \
  template <typename scalar_t, typename acc_t>                                               \
  void wpo_token_stats_forward(const WpoTokenStatsParams<scalar_t, acc_t>& p);               \
  }

PREFOPT_DECLARE_CPU_ROWS(DEFAULT)
PREFOPT_DECLARE_CPU_ROWS(AVX2)
PREFOPT_DECLARE_CPU_ROWS(AVX512)
#undef PREFOPT_DECLARE_CPU_ROWS

#if defined(PREFOPT_HAVE_AVX512)
#define PREFOPT_CPU_ROWS_AVX512_CASE(fn, p) \
  case ::prefopt::kernels::cpu::CpuCapability::kAvx512: \
    return ::prefopt::kernels::cpu::AVX512::fn(p);
#else
#define PREFOPT_CPU_ROWS_AVX512_CASE(fn, p)
#endif
#if defined(PREFOPT_HAVE_AVX2)
#define PREFOPT_CPU_ROWS_AVX2_CASE(fn, p) \
  case ::prefopt::kernels::cpu::CpuCapability::kAvx2: \
    return ::prefopt::kernels::cpu::AVX2::fn(p);
#else
#define PREFOPT_CPU_ROWS_AVX2_CASE(fn, p)
#endif

// Calls fn(p) from the instruction set in use.
#define PREFOPT_CPU_ROWS(fn, p)                                      \
  do {                                                               \
    switch (::prefopt::kernels::cpu::cpu_capability()) {             \
      PREFOPT_CPU_ROWS_AVX512_CASE(fn, p)                            \
      PREFOPT_CPU_ROWS_AVX2_CASE(fn, p)                              \
      default:                                                       \
        return ::prefopt::kernels::cpu::DEFAULT::fn(p);              \
    }                                                                \
  } while (0)

}  // namespace prefopt::kernels::cpu
