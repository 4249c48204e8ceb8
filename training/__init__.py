"""acom.training: training loops, recipes, decoding and evaluation.

``train`` (the two-stage fit: uncut, then with the RVQ at the cut), ``recipes``, ``augment``, ``decoding``
(CTC beam search with a word LM), ``evaluate`` and ``metrics``, and the commands ``acom train``, ``acom eval``
and ``acom features`` (``train_cli``). Above the model core, the codes and the data sets.
"""
