// Exposes the library's version as torch.ops.prefopt.version() (no tensors), so Python reads the version of the
// library it loaded from the one place it is declared: CMakeLists.txt's project(VERSION), through version.h.
// Never computes anything else.
#include <string>

#include <torch/library.h>

#include <prefopt/version.h>

namespace prefopt {
namespace {

std::string version_op() { return kVersion; }

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def("version() -> str");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) { m.impl("version", &version_op); }

}  // namespace prefopt
