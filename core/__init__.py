"""acom.core: the model core both halves run.

The log-mel front end (``features``), the blocks and models, the residual vector quantizer (``rvq``),
the cut (``split``: ``EdgeEncoder`` for the device, ``ServerDecoder`` for the server), checkpoints and the
shipped demonstration models (``pretrained/``), the ASR alphabet with CTC greedy decoding (``ctc``), audio
files (``audio``), MAC counts (``macs``) and the tasks as data (``tasks``). Imports only ``acom.errors``.
"""
