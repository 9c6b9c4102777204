"""Evaluation: the paper's metrics (``metrics``), restoring and scoring folders and
REDS (``evaluate``), and comparison figures (``figures``)."""
