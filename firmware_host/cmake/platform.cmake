# The platform code of a device program (firmware_host/c/platform/), per ACOM_KIND: where io.h writes,
# how the program starts and where it sits in memory. Included by the top-level CMakeLists.txt.

# mcu: the emulated machine's memory map, from the board profile (boards/NAME.toml [emulator])
set(ACOM_UART_BASE "" CACHE STRING "mcu: address of the UART transport_uart.c writes to, e.g. 0x49303000")
set(ACOM_RAM_ORIGIN "" CACHE STRING "mcu: start of the RAM the program runs from (cortex_m.ld), e.g. 0x01000000")
set(ACOM_RAM_LENGTH "" CACHE STRING "mcu: bytes of that RAM, e.g. 0x200000")

function(acom_platform target)
  if(ACOM_KIND STREQUAL "host")
    target_sources(${target} PRIVATE ${ACOM_PLATFORM_DIR}/io_stdio.c)
  elseif(ACOM_KIND STREQUAL "linux")
    # static: qemu-aarch64 runs it without the board's shared libraries
    target_sources(${target} PRIVATE ${ACOM_PLATFORM_DIR}/io_stdio.c)
    target_link_options(${target} PRIVATE -static)
  else()
    foreach(var ACOM_UART_BASE ACOM_RAM_ORIGIN ACOM_RAM_LENGTH)
      if(NOT ${var})
        message(FATAL_ERROR "${var} is required for an mcu program (the board profile's [emulator] gives it)")
      endif()
    endforeach()
    set(ld ${ACOM_PLATFORM_DIR}/cortex_m.ld)
    target_sources(${target} PRIVATE ${ACOM_PLATFORM_DIR}/io_semihost.c ${ACOM_PLATFORM_DIR}/cortex_m_start.c)
    target_compile_definitions(${target} PRIVATE UART_BASE=${ACOM_UART_BASE}u)
    # cortex_m_start.c is the start-up code (its vector table, .bss cleared, then main)
    target_link_options(${target} PRIVATE -nostartfiles --specs=nano.specs -T ${ld}
                        -Wl,--defsym=ACOM_RAM_ORIGIN=${ACOM_RAM_ORIGIN} -Wl,--defsym=ACOM_RAM_LENGTH=${ACOM_RAM_LENGTH})
    set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${ld})
    if(ACOM_FLASH_IMAGES)
      add_custom_command(TARGET ${target} POST_BUILD
        COMMAND ${CMAKE_OBJCOPY} -O binary $<TARGET_FILE:${target}> $<TARGET_FILE:${target}>.bin
        COMMAND ${CMAKE_OBJCOPY} -O ihex $<TARGET_FILE:${target}> $<TARGET_FILE:${target}>.hex
        COMMENT "${target}: .bin and .hex for a flash programmer")
    endif()
  endif()
endfunction()
