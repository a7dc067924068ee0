# Install rules: the library, its public headers, and an exported package so that an outside project can
# find_package(prefopt) and link prefopt::prefopt. The config re-finds Torch (and the CUDA toolkit when the
# kernels were built with it), because the exported target links Torch's imported targets by name.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PREFOPT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/prefopt")

install(TARGETS prefopt EXPORT prefoptTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/prefopt DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(EXPORT prefoptTargets NAMESPACE prefopt:: DESTINATION ${PREFOPT_INSTALL_CMAKEDIR})

configure_package_config_file(cmake/prefoptConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/prefoptConfig.cmake"
  INSTALL_DESTINATION ${PREFOPT_INSTALL_CMAKEDIR})
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/prefoptConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES
  "${CMAKE_CURRENT_BINARY_DIR}/prefoptConfig.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/prefoptConfigVersion.cmake"
  cmake/FindPCRE2.cmake
  cmake/Findutf8proc.cmake
  DESTINATION ${PREFOPT_INSTALL_CMAKEDIR})
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/include/prefopt/version.h" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/prefopt)
