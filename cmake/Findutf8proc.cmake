# Finds utf8proc (Debian: libutf8proc-dev) and defines the imported target utf8proc::utf8proc.
# Tries utf8proc's own CMake package first, then pkg-config (libutf8proc), then a plain header/library search.
# Sets utf8proc_FOUND and utf8proc_VERSION. Installed beside prefoptConfig.cmake for find_dependency(utf8proc).
include(FindPackageHandleStandardArgs)
if(TARGET utf8proc::utf8proc)
  set(utf8proc_FOUND TRUE)
  return()
endif()
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_UTF8PROC QUIET libutf8proc)
endif()
find_path(UTF8PROC_INCLUDE_DIR utf8proc.h HINTS ${PC_UTF8PROC_INCLUDE_DIRS})
find_library(UTF8PROC_LIBRARY NAMES utf8proc HINTS ${PC_UTF8PROC_LIBRARY_DIRS})
set(utf8proc_VERSION "${PC_UTF8PROC_VERSION}")
find_package_handle_standard_args(utf8proc REQUIRED_VARS UTF8PROC_LIBRARY UTF8PROC_INCLUDE_DIR
  VERSION_VAR utf8proc_VERSION
  REASON_FAILURE_MESSAGE "install utf8proc's development files (Debian: apt install libutf8proc-dev)")
if(utf8proc_FOUND)
  add_library(utf8proc::utf8proc UNKNOWN IMPORTED)
  set_target_properties(utf8proc::utf8proc PROPERTIES
    IMPORTED_LOCATION "${UTF8PROC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${UTF8PROC_INCLUDE_DIR}")
endif()
mark_as_advanced(UTF8PROC_INCLUDE_DIR UTF8PROC_LIBRARY)
