"""Training: losses, augmentation presets, the loop, callbacks, run configuration and the trainer."""
