# The Gloo-header ABI check (ctest: train.gloo_abi). prefopt compiles c10d's ProcessGroupGloo.hpp against Debian's
# libgloo-dev headers while the Gloo that runs is LibTorch's own copy; that is sound only while prefopt compiles no
# Gloo code: no reference to a Gloo function or object (an undefined gloo:: symbol), and no Gloo function emitted
# from the older headers' inline code (a defined symbol in namespace gloo). Gloo types may appear only as template
# arguments of the standard containers c10d's API passes them in (std::vector<std::shared_ptr<gloo::...>>).
# Usage: cmake -DLIBRARY=path/to/libprefopt.so -DNM=nm -P check_gloo_abi.cmake
execute_process(COMMAND ${NM} -C ${LIBRARY} OUTPUT_VARIABLE symbols RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${NM} -C ${LIBRARY} failed (${status})")
endif()
string(REPLACE "\n" ";" lines "${symbols}")
set(bad "")
set(seen 0)
foreach(line IN LISTS lines)
  if(line MATCHES "gloo::")
    math(EXPR seen "${seen} + 1")
    # The symbol's name starts after the address and the type letter.
    string(REGEX REPLACE "^[0-9a-fA-F ]*[A-Za-z] " "" name "${line}")
    if(line MATCHES "^ +U " OR NOT name MATCHES "^(void )?(std|c10)::")
      string(APPEND bad "  ${line}\n")
    endif()
  endif()
endforeach()
if(NOT bad STREQUAL "")
  message(FATAL_ERROR "libprefopt compiles Gloo code from the libgloo-dev headers, which may not match the Gloo "
                      "inside LibTorch:\n${bad}")
endif()
message(STATUS "Gloo ABI check: ${seen} symbols name a Gloo type, all as template arguments of std/c10 types; no "
               "Gloo function is referenced or emitted")
