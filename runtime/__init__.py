"""acom.runtime: the wire contract and the server that runs the tail (not built yet)."""
