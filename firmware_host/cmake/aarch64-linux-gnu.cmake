# 64-bit Arm Linux (the Raspberry Pis) with Debian's cross toolchain (aarch64-linux-gnu-gcc).
#   -DCMAKE_TOOLCHAIN_FILE=.../aarch64-linux-gnu.cmake -DACOM_CPU=cortex-a72
# ACOM_CPU: the core (-mcpu), the board profile's [emulator] cpu (acom.firmware_host.cbuild passes it).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# the compiler checks read this file again in a project of their own: hand them the core
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ACOM_CPU)

set(ACOM_CPU "" CACHE STRING "the Cortex-A core, e.g. cortex-a72 (Raspberry Pi 4), cortex-a76 (Raspberry Pi 5)")
if(NOT ACOM_CPU)
  message(FATAL_ERROR "aarch64-linux-gnu.cmake: give the core, e.g. -DACOM_CPU=cortex-a72")
endif()
set(CMAKE_C_FLAGS_INIT "-mcpu=${ACOM_CPU}")
set(CMAKE_CXX_FLAGS_INIT "-mcpu=${ACOM_CPU}")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
