"""Files: atomic writes (``files``), pixel formats and resizing (``pixels``), image
files (``imagefile``), where each input's output goes (``outputs``), and folders held by
one run at a time (``locks``)."""
