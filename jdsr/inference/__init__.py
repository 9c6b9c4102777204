"""Running a model: the jitted forward pass and the ×8 self-ensemble (``forward``),
any image (``restore``: padding, tiles, grayscale, alpha), videos (``video``) and the CPU
runtimes, ONNX Runtime and OpenVINO, with their cache of ONNX files (``runtimes``)."""
