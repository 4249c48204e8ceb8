"""acom.firmware_host: edge app sources and the commands that build, flash and emulate them (not built yet)."""
