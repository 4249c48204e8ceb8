"""acom.baselines: the pipelines ACoM is compared with.

Codec pipelines (``codecs``: Codec2, Opus, MP3 through their real libraries; ``coded_sets``: a data set as a
server would receive it through one) and neural codecs' encoder costs (``neural_codecs``). Above the data sets,
below training (``acom eval --codec`` and ``acom train --codec`` use them); the comparisons themselves are
``acom.comparisons``.
"""
