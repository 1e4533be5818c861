"""The feature engine: one spec, filter banks, and the CPU and GPU backends side by side."""
