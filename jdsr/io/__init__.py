"""Files: atomic writes (``files``), pixel formats and resizing (``pixels``), image
files (``imagefile``), and where each input's output goes (``outputs``)."""
