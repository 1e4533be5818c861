"""Getting clips in and features out: corpus reading, audio decoding, augmentation, stores and journals."""
