"""acom: audio coding for machines.

The repository root is the ``acom`` package; its top-level folders are the subpackages
(``acom.training``, ``acom.export``, ``acom.runtime``, ``acom.boards``, ``acom.firmware_host``).
"""

__version__ = "0.1.0"
