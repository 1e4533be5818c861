"""Labelling call archives: channels, speech detection, noise reduction, label files and summaries."""
