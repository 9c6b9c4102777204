"""The network: the model (``model``), its layers (``layers``), Winograd convolutions (``winograd``).

``torch_network`` is the same network in PyTorch, with the official module
names: the oracle of the parity tests and the benchmarks' baseline.
"""
