"""The console scripts ``jdsr-restore``, ``jdsr-convert`` and ``jdsr-export``, and what they share (``common``)."""
