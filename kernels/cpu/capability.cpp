// Run-time choice of the CPU kernels' instruction set (see capability.h). Compiled without vector flags:
// only the capability_*.cpp files contain AVX2 / AVX-512 code, and nothing here runs before the CPU is checked.
#include "capability.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace prefopt::kernels::cpu {
namespace {

CpuCapability detect() {
  CpuCapability best = CpuCapability::kDefault;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#if defined(PREFOPT_HAVE_AVX2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = CpuCapability::kAvx2;
#endif
#if defined(PREFOPT_HAVE_AVX512)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma")) {
    best = CpuCapability::kAvx512;
  }
#endif
#endif
  return best;
}

CpuCapability from_env(CpuCapability best) {
  const char* env = std::getenv("PREFOPT_CPU_CAPABILITY");
  if (env == nullptr) return best;
  CpuCapability wanted = best;
  if (std::strcmp(env, "default") == 0 || std::strcmp(env, "DEFAULT") == 0) wanted = CpuCapability::kDefault;
  if (std::strcmp(env, "avx2") == 0 || std::strcmp(env, "AVX2") == 0) wanted = CpuCapability::kAvx2;
  if (std::strcmp(env, "avx512") == 0 || std::strcmp(env, "AVX512") == 0) wanted = CpuCapability::kAvx512;
  return std::min(wanted, best);
}

std::atomic<int>& current() {
  static std::atomic<int> value{static_cast<int>(from_env(max_cpu_capability()))};
  return value;
}

}  // namespace

CpuCapability max_cpu_capability() {
  static const CpuCapability best = detect();
  return best;
}

CpuCapability cpu_capability() { return static_cast<CpuCapability>(current().load(std::memory_order_relaxed)); }

CpuCapability set_cpu_capability(CpuCapability capability) {
  const CpuCapability used = std::min(capability, max_cpu_capability());
  current().store(static_cast<int>(used), std::memory_order_relaxed);
  return used;
}

std::string cpu_capability_name(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::kAvx512:
      return "avx512";
    case CpuCapability::kAvx2:
      return "avx2";
    default:
      return "default";
  }
}

}  // namespace prefopt::kernels::cpu
