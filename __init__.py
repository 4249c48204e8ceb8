"""acom: audio coding for machines.

The repository root is the ``acom`` package; its top-level folders are the subpackages, in layers
(docs/architecture.md): ``boards``, ``core`` (the model core) and ``codes`` (bit budget, range coder) at the
bottom; ``corpora`` (data sets) and ``training`` above them; ``baselines`` above training; ``runtime`` (wire
format, bundle, server) above the core and codes only; ``export`` and ``firmware_host`` on top.
"""

__version__ = "0.1.0"
