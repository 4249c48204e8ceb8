"""acom.export: ``acom-export`` turns a trained edge head into verified device artifacts.

A chain of small stages (``pipeline``): the edge graph (``graph``), int8 calibration, lowering to ExecuTorch
(``executorch``), LiteRT (``litert``) and TFLite Micro with vela (``micro``), the C graph for microcontrollers
(``c_graph``), verification by codes (``verify``, ``reference``, ``tflite_reference``) and the bundle (``bundle``).
"""
