# Installs the built prefopt into a scratch prefix, configures and builds tests/consumer against it with
# find_package, and runs the result; then runs the installed prefopt-train and imports the installed Python package
# from outside the source tree (it must load the installed library). Invoked by CTest with cmake -P; fails on the
# first failing step.
foreach(var PREFOPT_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR TORCH_DIR GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer_test.cmake needs -D${var}=...")
  endif()
endforeach()

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test step failed (${rc}): ${ARGN}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}/prefix")
run_step("${CMAKE_COMMAND}" --install "${PREFOPT_BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
run_step("${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
         "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" "-DTorch_DIR=${TORCH_DIR}" -DCMAKE_BUILD_TYPE=Release)
run_step("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
run_step("${WORK_DIR}/build/consumer")

if(HAVE_TRAIN)
  run_step("${WORK_DIR}/prefix/bin/prefopt-train" --help)
endif()
if(PYTHON AND PYTHONDIR)
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -E env --unset=PREFOPT_LIBRARY "PYTHONPATH=${WORK_DIR}/prefix/${PYTHONDIR}"
      "${PYTHON}" -c "import prefopt; print(prefopt.__file__); print(prefopt.library_path); print(prefopt.__version__)"
    WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the installed Python package does not import (${rc}): ${out}${err}")
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  list(GET lines 0 package_file)
  list(GET lines 1 library)
  file(REAL_PATH "${WORK_DIR}/prefix" prefix)
  if(NOT package_file MATCHES "^${prefix}/" OR NOT library MATCHES "^${prefix}/")
    message(FATAL_ERROR "the installed package should load from ${prefix}, got package ${package_file}, library ${library}")
  endif()
endif()
