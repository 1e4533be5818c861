"""Models: network inputs, networks, the predictor, training, metrics and reports.

``config`` (NetworkConfig, store columns), ``inputs`` (what the networks eat), ``gender``,
``forward`` (NumPy and Keras forward passes), ``predictor``, ``saved`` (the model DIR
format), ``networks`` (Keras builders, the lazy TensorFlow import), ``train``, ``metrics``,
``report``. The public names load on first use (:mod:`lazy_loader`); training itself is
``serfast.train`` (here ``serfast.model.train`` is its module).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "config": ["ModelError", "NetworkConfig"],
    "predictor": ["Predictor"],
    "saved": ["load_predictor", "read_meta", "save_model"],
    "train": ["TrainError", "TrainOptions", "evaluate"],
    "metrics": ["scores"],
})
