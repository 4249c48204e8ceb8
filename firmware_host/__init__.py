"""acom.firmware_host: what runs on or drives the device.

The device's C (``c/``: the library with the wire format, tag, range coder, kernels and front end; ``c/app/``
the device application; ``c/platform/`` start-up, linker script and I/O per kind of board; ``c/test/`` test
drivers), built through the top-level CMakeLists.txt for a board by ``cbuild`` and run under the board's emulator;
the checks of that C against Python and TFLite Micro (``wire_c``, ``edge_c``), the C device sending to a server
(``device_c``), and the software device ``acom send`` (``client``, ``loopback_demo``).
"""
