"""acom.comparisons: ``acom bench``, the programs that put ACoM beside its baselines.

``rate_accuracy`` (the task metric against bit/s per trained run and number of stages), ``comparison``
(against codec pipelines: codec-coded audio into uncut models) and ``comparison_report`` (tables, plots,
targets). The top of the modelling side: it trains and evaluates (``acom.training``) on data through the
codec pipelines (``acom.baselines``).
"""
