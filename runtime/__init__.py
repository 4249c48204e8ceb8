"""acom.runtime: the contract between device and server, and the server.

The wire format (``wire``, pure functions; ``vectors`` and the shipped ``wire_vectors/``), the bundle manifest
(``bundle``), transports, stream reassembly (``streams``), the batched tail (``engine``, ``slot_engine``), results
and metrics (``server``, ``serve_cli``: ``acom serve``), and the tail in ONNX for Triton. Imports the model core and
the codes only: a GPU server needs torch, not executorch, LiteRT or the training code.
"""
