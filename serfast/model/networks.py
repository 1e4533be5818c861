"""The Keras networks of ``serfast train``: the serfast ensemble's members and the
SER-FusionNet method's network, and the quiet, lazy TensorFlow import they all go through.

Input shapes come from :mod:`serfast.model.config` (``NetworkConfig``) and
:mod:`serfast.model.inputs` (``network_inputs``); the saved-model format is in
:mod:`serfast.model.saved`, the TensorFlow-free forward pass in :mod:`serfast.model.forward`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from .config import NetworkConfig

__all__ = ["tensorflow", "keras_modules", "seeded_and_deterministic", "build_stats_member",
           "build_linear_member", "build_seq_member", "build_method", "average_members",
           "member_input"]


def tensorflow():
    """Import TensorFlow lazily; in serfast's own processes (:mod:`serfast.process`: its
    CLI and workers), quietly, so that a command prints only its own lines. There, unless
    the user set ``TF_CPP_MIN_LOG_LEVEL`` (then nothing is hidden):

    * it is set to 3 before the first import: TensorFlow's C++ log lines during
      training (e.g. the E-level "NodeDef mentions attribute use_unbounded_threadpool"
      of a Keras/TF version skew) are dropped; real failures still raise exceptions;
    * TensorFlow >= 2.17 writes its start-up notices (the absl "All log messages before
      absl::InitializeLog()" warning, oneDNN, CPU-feature guard) before it reads that
      variable, so file descriptor 2 is pointed at a temporary file during the import
      (its content is replayed on stderr if the import fails);
    * TensorFlow's Python logger is set to ERROR (the "tf.function retracing" warning
      of one predict per fold).

    A program that uses serfast as a library gets a plain ``import tensorflow``: its
    environment, stderr and loggers are left alone. Every TensorFlow/Keras import of
    serfast goes through here (or :func:`keras_modules`).
    """
    import sys

    from ..process import owned

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if not owned() or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        import tensorflow as tf

        return tf
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with _native_stderr_hidden():
        import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    return tf


class _native_stderr_hidden:
    """Context manager: file descriptor 2 goes to a temporary file (what native code
    writes there is dropped), restored on exit; replayed on stderr on an exception."""

    def __enter__(self):
        import sys
        import tempfile

        sys.stderr.flush()
        self.saved = os.dup(2)
        self.tmp = tempfile.TemporaryFile()
        os.dup2(self.tmp.fileno(), 2)
        return self

    def __exit__(self, exc_type, exc, tb):
        import sys

        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        if exc_type is not None:
            self.tmp.seek(0)
            sys.stderr.write(self.tmp.read().decode("utf-8", "replace"))
        self.tmp.close()
        return False


def keras_modules():
    """Import Keras lazily (TensorFlow through :func:`tensorflow`); returns (keras, layers).
    TensorFlow keeps its own thread pools (every core)."""
    tensorflow()
    import keras
    from keras import layers

    return keras, layers


@contextlib.contextmanager
def seeded_and_deterministic(seed: int) -> Iterator[None]:
    """For the block: TensorFlow's op determinism on and Keras's seed ``seed`` (Python's,
    NumPy's and TensorFlow's global generators); on exit the determinism setting and the
    Python and NumPy generators' states are as they were."""
    import random

    import numpy as np

    keras, _ = keras_modules()  # TensorFlow imported quietly first (tensorflow())
    from tensorflow.python.framework import config as tf_config
    was_deterministic = tf_config.is_op_determinism_enabled()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    tf_config.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if not was_deterministic:
            tf_config.disable_op_determinism()


def build_stats_member(n_in: int, n_classes: int, name: str):
    """Serfast MLP: dropout 0.3 -> Dense 128 ReLU -> dropout 0.4 -> softmax."""
    keras, layers = keras_modules()
    x_in = keras.Input((n_in,), name="stats")
    x = layers.Dropout(0.3)(x_in)
    x = layers.Dense(128, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.4)(x)
    out = layers.Dense(n_classes, activation="softmax", name="out")(x)
    return keras.Model({"stats": x_in}, out, name=name)


def build_linear_member(n_in: int, n_classes: int, name: str):
    """Serfast linear member: softmax of one Dense layer over the statistics (its weights
    are a logistic regression's, set by the trainer)."""
    keras, layers = keras_modules()
    x_in = keras.Input((n_in,), name="stats")
    out = layers.Dense(n_classes, activation="softmax", name="out")(x_in)
    return keras.Model({"stats": x_in}, out, name=name)


def member_input(kind: str) -> str:
    """The network input a serfast member of ``kind`` ("stats", "linear", "seq") reads."""
    return "seq" if kind == "seq" else "stats"


def build_seq_member(n_steps: int, n_feat: int, n_classes: int, name: str):
    """Serfast sequence model over (n_steps, n_feat) frames: 2 x [Conv1D 64 k5, BN, ReLU,
    max-pool 2] -> mean+max pooling over time -> Dense 64 ReLU -> softmax."""
    keras, layers = keras_modules()
    x_in = keras.Input((n_steps, n_feat), name="seq")
    x = layers.SpatialDropout1D(0.1)(x_in)
    for k in range(2):
        x = layers.Conv1D(64, 5, padding="same", name=f"conv{k}")(x)
        x = layers.BatchNormalization(name=f"bn{k}")(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling1D(2)(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    x = layers.Dense(64, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.4)(x)
    out = layers.Dense(n_classes, activation="softmax", name="out")(x)
    return keras.Model({"seq": x_in}, out, name=name)


def build_method(config: NetworkConfig, shapes: dict[str, tuple], n_classes: int):
    """The method's SER-FusionNet: extractor -> Dense 32 deep features, concatenated with
    the six statistical values and gender, then the ``config.classifier`` head."""
    keras, layers = keras_modules()
    inputs = {name: keras.Input(shapes[name], name=name) for name in config.input_names}
    if config.extractor == "conv2d":
        x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs["logmel"])
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(4)(x)
    else:
        x = layers.Conv1D(256, 5, padding="same", activation="relu")(inputs["acoustic"])
        x = layers.MaxPooling1D(2)(x)
        x = layers.Conv1D(256, 5, padding="same", activation="relu")(x)
        x = layers.MaxPooling1D(2)(x)
    x = layers.Dropout(0.3)(x)
    deep = layers.Dense(32, activation="relu")(layers.Flatten()(x))
    fused = layers.Concatenate()([deep, inputs["aux"]])
    if config.classifier == "mlp":
        x = layers.Dropout(0.3)(layers.Dense(64, activation="relu")(fused))
    else:
        seq = layers.Reshape((fused.shape[-1], 1))(fused)
        lstm = layers.LSTM(64)
        x = layers.Bidirectional(lstm)(seq) if config.classifier == "bilstm" else lstm(seq)
    out = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, out, name="method")


def average_members(members: list, kinds: list[str], shapes: dict[str, tuple]):
    """One Keras model averaging the serfast members' probabilities; member ``j`` of kind
    ``kinds[j]`` reads the input :func:`member_input` names."""
    keras, layers = keras_modules()
    inputs = {name: keras.Input(shape, name=name) for name, shape in shapes.items()}
    outs = [m({member_input(k): inputs[member_input(k)]}) for m, k in zip(members, kinds)]
    if len(outs) == 1:
        return keras.Model(inputs, outs[0], name="ensemble")
    return keras.Model(inputs, layers.Average()(outs), name="ensemble")
