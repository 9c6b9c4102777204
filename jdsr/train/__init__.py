"""Training: the phases as data (``phases``: groups, freezing, the optimizer, the step), the
losses (``losses``), the loop (``loop``: devices, the compiled programs, validation, logging,
saving through ``jdsr.checkpoints.training``), TensorBoard logs (``writer``) and ``compiling``."""
