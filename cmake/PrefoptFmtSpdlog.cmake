# Defines prefopt_fmt_spdlog: Debian's fmt and spdlog, made to win over the fmt headers that the torch wheel
# ships in its own include directory. That directory comes in as -isystem, ahead of /usr/include, so without
# this Debian's spdlog 1.10 would compile against fmt 12 and fail. A folder of links to the system headers,
# added with -I (searched before -isystem), restores the pairing without putting /usr/include itself first.
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)

get_target_property(_prefopt_fmt_include fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
if(NOT _prefopt_fmt_include)
  set(_prefopt_fmt_include /usr/include)
endif()
list(GET _prefopt_fmt_include 0 _prefopt_fmt_include)
set(_prefopt_links "${CMAKE_BINARY_DIR}/system-fmt-spdlog/include")
file(MAKE_DIRECTORY "${_prefopt_links}")
foreach(dir fmt spdlog)
  if(EXISTS "${_prefopt_fmt_include}/${dir}" AND NOT EXISTS "${_prefopt_links}/${dir}")
    file(CREATE_LINK "${_prefopt_fmt_include}/${dir}" "${_prefopt_links}/${dir}" SYMBOLIC)
  endif()
endforeach()

add_library(prefopt_fmt_spdlog INTERFACE)
target_include_directories(prefopt_fmt_spdlog BEFORE INTERFACE "${_prefopt_links}")
target_link_libraries(prefopt_fmt_spdlog INTERFACE fmt::fmt spdlog::spdlog)
