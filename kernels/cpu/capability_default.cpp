// The vectorised CPU row loops compiled for the default instruction set (CMake sets CPU_CAPABILITY and the
// compiler flags of this file); capability.cpp decides at run time which copy runs.
#include "capability_impl.h"
