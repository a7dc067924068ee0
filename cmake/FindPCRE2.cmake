# Finds PCRE2's 8-bit library (Debian: libpcre2-dev) and defines the imported target PCRE2::8BIT (users define
# PCRE2_CODE_UNIT_WIDTH 8 before including pcre2.h).
# Tries PCRE2's own CMake package first (a PCRE2 built with CMake installs one), then pkg-config (libpcre2-8),
# then a plain header/library search. Sets PCRE2_FOUND and PCRE2_VERSION. Installed beside prefoptConfig.cmake
# so the package config can find_dependency(PCRE2) for a static libprefopt.
include(FindPackageHandleStandardArgs)
if(TARGET PCRE2::8BIT)
  set(PCRE2_FOUND TRUE)
  return()
endif()
find_package(PCRE2 CONFIG QUIET COMPONENTS 8BIT)
if(TARGET PCRE2::8BIT)
  find_package_handle_standard_args(PCRE2 CONFIG_MODE)
  return()
endif()
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_PCRE2 QUIET libpcre2-8)
endif()
find_path(PCRE2_INCLUDE_DIR pcre2.h HINTS ${PC_PCRE2_INCLUDE_DIRS})
find_library(PCRE2_LIBRARY NAMES pcre2-8 HINTS ${PC_PCRE2_LIBRARY_DIRS})
set(PCRE2_VERSION "${PC_PCRE2_VERSION}")
find_package_handle_standard_args(PCRE2 REQUIRED_VARS PCRE2_LIBRARY PCRE2_INCLUDE_DIR VERSION_VAR PCRE2_VERSION
  REASON_FAILURE_MESSAGE "install PCRE2's development files (Debian: apt install libpcre2-dev)")
if(PCRE2_FOUND)
  add_library(PCRE2::8BIT UNKNOWN IMPORTED)
  set_target_properties(PCRE2::8BIT PROPERTIES
    IMPORTED_LOCATION "${PCRE2_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${PCRE2_INCLUDE_DIR}")
endif()
mark_as_advanced(PCRE2_INCLUDE_DIR PCRE2_LIBRARY)
