"""Training: the phases as data (``phases``), the losses (``losses``), the loop
(``loop``: devices, validation, checkpoints, resuming) and ``compiling``."""
