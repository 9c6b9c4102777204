"""The console scripts ``jdsr-restore`` (``restore``), ``jdsr-convert`` (``convert``),
``jdsr-export`` (``export``) and ``jdsr-app`` (``app``), and what they share (``common``)."""
