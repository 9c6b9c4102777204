"""Datasets: REDS on disk (``reds``) and through tensorflow-datasets (``reds_tfds``), tiled
frames (``tiles``), the training input pipeline with grain (``pipeline``), where a config's
data comes from (``sources``), and synthetic camera shake (``degrade``)."""
