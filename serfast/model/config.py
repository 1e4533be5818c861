"""What a model is built from: the network configuration, the store columns it reads,
the saved-model format number and the error every model function raises.

Two networks:

* ``serfast`` (the default): an ensemble of MLPs (and optionally logistic regressions,
  "linear" members) over per-speaker standardised utterance statistics of the frame-level
  features (plus the store's values and gender) and small Conv1D sequence models over
  per-speaker normalised frames; member probabilities are averaged. Needs a store extracted with ``--frames`` (without frames it falls back to
  MLPs over the 168 values).
* ``method``: the SER-FusionNet method's exact network: a Conv1D (or Conv2D over the
  frame log-mel) extractor -> Dense 32 deep features, fused with the six statistical
  values and gender, classified by an MLP, LSTM or BiLSTM head; global standardisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FORMAT", "ModelError", "NetworkConfig"]

FORMAT = 1


class ModelError(ValueError):
    """A model DIR or input that cannot be used; one-line message."""


@dataclass
class NetworkConfig:
    """What to build and how to feed it.

    ``network``: "serfast" or "method"; ``extractor``: "conv1d" | "conv2d" (method only);
    ``classifier``: "mlp" | "lstm" | "bilstm" (method only); ``norm``: "speaker" (per-group
    standardisation) or "global"; ``ensemble``: members of each kind (serfast);
    ``frames``: whether frame-level features are used; ``n_steps``: frames per clip fed
    to sequence members (pad/crop); ``stats``: which frames the MLPs' utterance
    statistics pool: "all" (every log-mel band and MFCC) or "mfcc" (the mean log-mel
    and the MFCC); ``rhythm``: whether the statistics end with the speech rhythm of the
    frames' F0 and loudness (:func:`serfast.model.inputs.rhythm_stats`; sets with prosody);
    ``temperature``: the softmax temperature T the ensemble's probabilities are calibrated
    with (p_k proportional to p_k ** (1 / T)).
    """

    network: str = "serfast"
    extractor: str = "conv1d"
    classifier: str = "mlp"
    norm: str = "speaker"
    ensemble: int = 2
    frames: bool = True
    n_steps: int = 0
    members: list[str] = field(default_factory=list)  # "stats" / "linear" / "seq" per member
    stats: str = "all"
    rhythm: bool = False
    temperature: float = 1.0

    @property
    def input_names(self) -> list[str]:
        """Names of the network inputs this config needs."""
        if self.network == "serfast":
            return ["stats", "seq"] if "seq" in self.members else ["stats"]
        return ["logmel", "aux"] if self.extractor == "conv2d" else ["acoustic", "aux"]
