"""Training: the phases as data (``phases``: groups, freezing, the optimizer, the step), the
losses (``losses``), the loop (``loop``: devices, batches, logging, saving through
``jdsr.checkpoints.training``), the compiled programs (``compiling``), validation
(``validation``), stopping on a signal (``signals``) and TensorBoard logs (``writer``)."""
