# Bare-metal Arm Cortex-M with the GNU Arm Embedded toolchain (arm-none-eabi-gcc), for the mcu boards.
#   -DCMAKE_TOOLCHAIN_FILE=.../arm-none-eabi.cmake -DACOM_CPU=cortex-m55 [-DACOM_FPU=auto]
# ACOM_CPU: the core (-mcpu); ACOM_FPU: its floating-point unit (-mfpu) used with the hard-float ABI, empty for
# software floats. The board profile's [emulator] cpu and fpu give both (acom.firmware_host.cbuild passes them).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
# no program links without start-up code and a linker script: check the compiler by building a library
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
# those checks read this file again in a project of their own: hand them the core and FPU
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ACOM_CPU ACOM_FPU)

set(ACOM_CPU "" CACHE STRING "the Cortex-M core, e.g. cortex-m4, cortex-m7, cortex-m55")
set(ACOM_FPU "" CACHE STRING "its FPU for the hard-float ABI, e.g. fpv4-sp-d16, fpv5-d16, auto; empty: soft float")
if(NOT ACOM_CPU)
  message(FATAL_ERROR "arm-none-eabi.cmake: give the core, e.g. -DACOM_CPU=cortex-m55")
endif()
set(_acom_arch "-mcpu=${ACOM_CPU} -mthumb")
if(ACOM_FPU)
  set(_acom_arch "${_acom_arch} -mfpu=${ACOM_FPU} -mfloat-abi=hard")
endif()
set(CMAKE_C_FLAGS_INIT "${_acom_arch}")
set(CMAKE_CXX_FLAGS_INIT "${_acom_arch}")
set(CMAKE_ASM_FLAGS_INIT "${_acom_arch}")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
