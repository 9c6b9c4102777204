"""Running a model: the jitted forward pass and the ×8 self-ensemble (``forward``),
any image (``restore``: padding, tiles, grayscale, alpha) and videos (``video``)."""
