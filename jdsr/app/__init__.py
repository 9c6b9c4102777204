"""``jdsr-app``, the local web page: ``jobs`` (the work, no web) and ``ui`` (the Gradio page)."""
