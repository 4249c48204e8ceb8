"""acom.corpora: the data sets.

Loaders for LibriSpeech- and UrbanSound8K-shaped folders (``datasets``), cached log-mel features
(``featcache``), the synthetic speech and urban-sound sets generated locally (``synth/``) and ``acom data``
(``data_cli``). Above the model core (it computes features with ``acom.core.features``).
"""
