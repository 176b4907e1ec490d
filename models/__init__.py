"""Model registry: resolves ONNX model files and creates inference sessions."""
