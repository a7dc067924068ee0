# Puts ccache in front of the C++ and CUDA compilers when it is installed: rebuilds on 2 cores are
# dominated by ATen's headers, which ccache makes nearly free after the first build.
if(PREFOPT_USE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(PREFOPT_CCACHE_PROGRAM ccache)
  if(PREFOPT_CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER "${PREFOPT_CCACHE_PROGRAM}")
    set(CMAKE_CUDA_COMPILER_LAUNCHER "${PREFOPT_CCACHE_PROGRAM}")
    message(STATUS "prefopt: using ccache at ${PREFOPT_CCACHE_PROGRAM}")
  endif()
endif()
