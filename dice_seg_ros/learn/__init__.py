"""Training with torch: losses, training, fine-tuning, ONNX export, provenance."""
