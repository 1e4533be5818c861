"""Getting clips in and features out: corpus reading, audio decoding, augmentation, stores
and journals. The public names load on first use (:mod:`lazy_loader`)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "corpus": ["Clip", "Corpus", "CorpusError", "read_corpus", "scan"],
    "audio": ["AudioError", "channel_blocks", "load_clip", "resample"],
    "store": ["Store", "StoreError", "open_store"],
    "journal": ["Journal"],
})
