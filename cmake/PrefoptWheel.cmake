# Install rules of the Python wheel (pyproject.toml; scikit-build-core installs into the wheel's prefopt/ package
# folder): libprefopt.so as prefopt/lib/libprefopt.so, where the package loads it from, and prefopt-train into the
# wheel's scripts, which pip puts in the environment's bin/. No headers or CMake package: cmake --install has those.
install(TARGETS prefopt LIBRARY DESTINATION lib)
if(TARGET prefopt-train)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
  # From <env>/bin to <env>/lib/pythonX.Y/site-packages/prefopt/lib, and to the torch it was built against.
  set_target_properties(prefopt-train PROPERTIES INSTALL_RPATH
    "\$ORIGIN/../lib/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/site-packages/prefopt/lib;${TORCH_INSTALL_PREFIX}/lib")
  install(TARGETS prefopt-train RUNTIME DESTINATION "${SKBUILD_SCRIPTS_DIR}")
endif()
