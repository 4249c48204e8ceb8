"""acom.codes: what the codes cost on the link.

``budget``: THE bit budget (``nominal_bps``) that the packer, the server, the reports and the tests call;
``priors``: per-stage code statistics and the range coder that spends less than the budget. Beside the wire
format (``acom.runtime.wire``), which imports it for range-coded payloads. Imports only ``acom.errors``.
"""
