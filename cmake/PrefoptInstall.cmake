# Install rules of cmake --install: the library, its public headers, and an exported package so that an outside
# project can find_package(prefopt) and link prefopt::prefopt; prefopt-train; the Python package. The config re-finds
# Torch (and the CUDA toolkit when the kernels were built with it), because the exported target links Torch's
# imported targets by name. (The Python wheel's layout is PrefoptWheel.cmake's.)
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

# prefopt-train, beside the library it links.
if(TARGET prefopt-train)
  set_target_properties(prefopt-train PROPERTIES INSTALL_RPATH "\$ORIGIN/../${CMAKE_INSTALL_LIBDIR};${PREFOPT_INSTALL_RPATH}")
  install(TARGETS prefopt-train RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# The Python package, where `PYTHONPATH=<prefix>/<PREFOPT_INSTALL_PYTHONDIR>` finds it, with the path from it to the
# installed library (prefopt/_install_location.txt, which _library.py reads).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(PREFOPT_INSTALL_PYTHONDIR "${CMAKE_INSTALL_LIBDIR}/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/site-packages"
    CACHE STRING "Where cmake --install puts the Python package, relative to the prefix")
  install(DIRECTORY python/prefopt DESTINATION ${PREFOPT_INSTALL_PYTHONDIR} PATTERN "__pycache__" EXCLUDE)
  file(RELATIVE_PATH PREFOPT_PACKAGE_TO_LIBRARY "/prefix/${PREFOPT_INSTALL_PYTHONDIR}/prefopt"
    "/prefix/${CMAKE_INSTALL_LIBDIR}/libprefopt.so")
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/_install_location.txt" "${PREFOPT_PACKAGE_TO_LIBRARY}\n")
  install(FILES "${CMAKE_CURRENT_BINARY_DIR}/_install_location.txt" DESTINATION ${PREFOPT_INSTALL_PYTHONDIR}/prefopt)
endif()
