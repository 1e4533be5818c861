"""serfast: fast speech-emotion-recognition features, training and bulk labelling.

The pipeline, corpus -> audio -> features -> store -> model -> labels, one sub-package per
stage:

* :mod:`serfast.io`: corpora, audio decoding, augmentation, feature stores, journals;
* :mod:`serfast.features`: the :class:`FeatureSpec` and its CPU and GPU backends, side by
  side with librosa's per-clip reference;
* :mod:`serfast.model`: network inputs, networks, the Predictor, training and reports;
* :mod:`serfast.calls`: archives of calls -> channels -> labelled windows.

:mod:`serfast.extract` runs corpus -> store on all cores. The CLI (``serfast ...``) is the
separate package ``serfast_cli``; the library never imports click.

The names most programs need are importable from the package itself::

    from serfast import FeatureSpec, compute_batch, train, TrainOptions, load_predictor
    from serfast.extract import extract, ExtractOptions

They load on first use (:mod:`lazy_loader`): ``import serfast`` alone imports none of
NumPy, the feature engine (Numba, SciPy), soundfile or TensorFlow, so a worker pool's
parent stays light. ``serfast.extract`` is the module (its ``extract`` runs the pipeline).
"""

import lazy_loader as _lazy

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "extract": ["ExtractOptions"],
    "io.corpus": ["scan"],
    "features.spec": ["FeatureSpec"],
    "features.cpu": ["compute_batch"],
    "model.saved": ["load_predictor"],
    "model.train": ["TrainOptions", "evaluate", "train"],
    "calls.predict": ["PredictOptions", "predict_archive"],
})
