"""The network: the model (``model``), its layers (``layers``), Winograd convolutions
(``winograd``), the NCHW variant for ONNX (``layout``) and the compiler's options (``xla_options``).

The same network in PyTorch, the oracle of the parity tests and the
benchmarks' baseline, is ``tests/torch_network.py``: it is not part of the
installed package, which imports torch only to read and write ``.pth`` files.
"""
