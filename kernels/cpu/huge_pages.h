// Allocation of a large CPU output that the kernel is about to write in full (a backward's [N, V] gradient),
// asking Linux to back it with transparent huge pages. A fresh buffer of hundreds of MiB otherwise costs one page
// fault per 4 KiB on first write, which on a VM takes as long as the kernel's own arithmetic; with 2 MiB pages it
// is 512 times fewer. It never reads or initialises the memory, and never changes what the tensor holds: where
// the advice is unavailable (another OS, THP disabled) the buffer is simply an ordinary one.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace prefopt::kernels::cpu {

// Below this size the faults are cheap and the advice is not worth a system call.
inline constexpr int64_t kHugePageAdviceMinBytes = int64_t{32} << 20;

inline at::Tensor empty_for_full_write(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options.memory_format(at::MemoryFormat::Contiguous));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const int64_t bytes = out.numel() * static_cast<int64_t>(out.element_size());
  if (bytes >= kHugePageAdviceMinBytes) {
    // Only whole 2 MiB pages inside the buffer are advised; the advice is a hint, so its result is not checked.
    constexpr uintptr_t kHuge = uintptr_t{2} << 20;
    const auto begin = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t last = (begin + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  return out;
}

}  // namespace prefopt::kernels::cpu
