"""acom.training: data sets, features, models, the RVQ, training and evaluation.

The bottom layer: imports no other acom subpackage (only ``acom.errors``).
"""
