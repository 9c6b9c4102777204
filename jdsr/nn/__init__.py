"""The network: the model (``model``), its layers (``layers``), Winograd convolutions (``winograd``).

The same network in PyTorch, the oracle of the parity tests and the
benchmarks' baseline, is ``tests/torch_network.py``: it is not part of the
installed package, which imports torch only to read and write ``.pth`` files.
"""
