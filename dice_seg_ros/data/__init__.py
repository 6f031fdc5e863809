"""Training data: generated terrain scenes, real-dataset loaders, augmentation (numpy only)."""
