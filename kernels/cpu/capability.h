// Which vector instruction set the CPU kernels run with. The vectorised row loops (cpu/*_rows.h) are compiled
// once per capability (capability_default.cpp, capability_avx2.cpp, capability_avx512.cpp, each with its own
// compiler flags, as ATen's DispatchStub does), and the operators pick one at run time, so the library runs on
// any x86-64 CPU and uses AVX2 or AVX-512 where the CPU has them. Never compiles vector code itself.
#pragma once

#include <string>

namespace prefopt::kernels::cpu {

enum class CpuCapability { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

// The capability in use: the best one that was compiled and that this CPU supports, lowered by the
// environment variable PREFOPT_CPU_CAPABILITY=default|avx2|avx512 when set. Decided once per process.
CpuCapability cpu_capability();

// The best capability compiled into the library and supported by this CPU.
CpuCapability max_cpu_capability();

// For tests and benchmarks: use `capability` (clamped to max_cpu_capability()) from now on; returns the one
// that is now in use.
CpuCapability set_cpu_capability(CpuCapability capability);

std::string cpu_capability_name(CpuCapability capability);

}  // namespace prefopt::kernels::cpu
