"""Models: network inputs, networks, the predictor, training, metrics and reports."""
