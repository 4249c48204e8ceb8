"""acom.profiling: what the device half costs and which cut fits a board.

``acom profile`` (profile.py): MACs, memory, measured instructions and energy per second of audio of a bundle,
per board and link, beside the codec pipelines. ``acom plan`` (plan.py): every cut point and number of stages of
a checkpoint against a board's budgets, without lowering.
"""
