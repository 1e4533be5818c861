"""serfast: fast speech-emotion-recognition features, training and bulk labelling.

The pipeline, one module per stage:
corpus -> audio -> features (spec, CPU kernels) -> store -> model -> predict.
"""

__version__ = "0.1.0"
