# Finds LibTorch and decides whether the CUDA kernels are built (PREFOPT_CUDA_ENABLED).
# Torch is looked up on CMAKE_PREFIX_PATH / Torch_DIR first (any LibTorch a user has); failing that, the
# prefix that the active Python's torch reports (torch.utils.cmake_prefix_path), which is how the
# repository's own virtual environment is found.

# CUDA must be enabled as a language before Torch's config runs, because that config reads the toolkit
# and the architecture list to set the nvcc flags for every target that links torch.
set(_prefopt_want_cuda OFF)
if(PREFOPT_WITH_CUDA STREQUAL "ON" OR PREFOPT_WITH_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(_prefopt_want_cuda ON)
    if(NOT DEFINED TORCH_CUDA_ARCH_LIST)
      set(TORCH_CUDA_ARCH_LIST "${PREFOPT_CUDA_ARCH_LIST}")
    endif()
    enable_language(CUDA)
  elseif(PREFOPT_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "PREFOPT_WITH_CUDA=ON but no CUDA compiler was found: put nvcc on PATH or set CMAKE_CUDA_COMPILER")
  endif()
elseif(NOT PREFOPT_WITH_CUDA STREQUAL "OFF")
  message(FATAL_ERROR "PREFOPT_WITH_CUDA must be AUTO, ON or OFF, got '${PREFOPT_WITH_CUDA}'")
endif()

find_package(Torch QUIET)
if(NOT Torch_FOUND)
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_Interpreter_FOUND)
    execute_process(
      COMMAND "${Python3_EXECUTABLE}" -c "import torch; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _prefopt_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE _prefopt_torch_rc ERROR_QUIET)
    if(_prefopt_torch_rc EQUAL 0 AND _prefopt_torch_prefix)
      list(APPEND CMAKE_PREFIX_PATH "${_prefopt_torch_prefix}")
    endif()
  endif()
  find_package(Torch)
endif()
if(NOT Torch_FOUND)
  message(FATAL_ERROR
    "prefopt needs LibTorch. Either pass -DCMAKE_PREFIX_PATH=/path/to/libtorch, or configure with a Python "
    "whose torch is installed (scripts/setup.sh makes one in .venv).")
endif()

# Torch's config says whether it was built with CUDA through its CUDA libraries list.
set(PREFOPT_CUDA_ENABLED OFF)
if(_prefopt_want_cuda AND TORCH_CUDA_LIBRARIES)
  set(PREFOPT_CUDA_ENABLED ON)
elseif(PREFOPT_WITH_CUDA STREQUAL "ON")
  message(FATAL_ERROR "PREFOPT_WITH_CUDA=ON but the Torch at ${Torch_DIR} was built without CUDA")
endif()
