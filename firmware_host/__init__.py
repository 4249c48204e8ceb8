"""acom.firmware_host: the software device (`acom send`), the device's C sources (c/: the wire format so far) and
the commands that build them for a board and run them under its emulator (wire_c)."""
