// What the plain benchmark programs share: integer flags given as "--name value" pairs, and the process's peak
// resident memory. Header-only; never used by the library or the tests.
#pragma once

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace prefopt::bench {

/// Reads "--name value" pairs from argv[first..] into the named integers; an unknown flag or a missing value is
/// reported on stderr and makes it return false.
inline bool parse_flags(int argc, char** argv, int first, const std::map<std::string, long long*>& flags) {
  for (int i = first; i < argc; i += 2) {
    const auto found = flags.find(argv[i]);
    if (found == flags.end() || i + 1 >= argc) {
      std::fprintf(stderr, "unknown argument or missing value: %s\n", argv[i]);
      return false;
    }
    *found->second = std::atoll(argv[i + 1]);
  }
  return true;
}

/// Peak resident set size of this process so far, in MiB (ru_maxrss is in KiB on Linux).
inline double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace prefopt::bench
