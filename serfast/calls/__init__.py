"""Labelling call archives: channels, speech detection, noise reduction, label files and
summaries. The public names load on first use (:mod:`lazy_loader`)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "predict": ["PredictOptions", "PredictReport", "predict_archive"],
    "channel": ["ChannelResult", "WindowOptions", "label_channel"],
})
