"""Datasets: finding and pairing the frames of REDS on disk (``jdsr.data.reds``)."""
