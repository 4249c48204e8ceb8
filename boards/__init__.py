"""acom.boards: one TOML profile per board and its loader (not built yet)."""
