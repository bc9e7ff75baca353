# Locates the LibTorch bundled in the torch wheel: asks SBTREC_PYTHON for torch.utils.cmake_prefix_path
# unless Torch_DIR is already set. Sets TORCH_LIB_DIR (for rpaths).
if(NOT Torch_DIR)
  if(NOT EXISTS "${SBTREC_PYTHON}")
    message(FATAL_ERROR "sbtrec: no Python at ${SBTREC_PYTHON}. Run ./scripts/setup.sh first "
                        "(it installs torch==2.11.0 into .venv), or pass -DTorch_DIR=... / -DSBTREC_PYTHON=...")
  endif()
  execute_process(COMMAND "${SBTREC_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "sbtrec: ${SBTREC_PYTHON} cannot import torch. Run ./scripts/setup.sh.")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
endif()
# The wheel's TorchConfig probes CUDA; quiet its architecture warning, we build no CUDA sources here.
set(TORCH_CUDA_ARCH_LIST "9.0" CACHE STRING "")
find_package(Torch REQUIRED)
get_filename_component(TORCH_LIB_DIR "${TORCH_LIBRARY}" DIRECTORY)
