"""The serfast ensemble's forward pass in NumPy (no TensorFlow), and the Keras one."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["member_arrays", "numpy_member", "numpy_forward", "keras_forward"]


def member_arrays(member, kind: str) -> dict[str, np.ndarray]:
    """A serfast member's weights as plain arrays, keyed ``layer/i``."""
    names = (["out"] if kind == "linear" else
             ["hidden", "out"] + (["conv0", "bn0", "conv1", "bn1"] if kind == "seq" else []))
    return {f"{n}/{i}": np.asarray(w) for n in names
            for i, w in enumerate(member.get_layer(n).get_weights())}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _conv_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Conv1D with "same" padding: x (n, steps, c_in), kernel (width, c_in, c_out) ->
    (n, steps, c_out). One GEMM per tap over the flattened padded batch, then shift-add."""
    width, (n, steps, _) = kernel.shape[0], x.shape
    padded = steps + width - 1
    flat = np.pad(x, ((0, 0), (width // 2, width - 1 - width // 2), (0, 0))).reshape(n * padded, -1)
    total = n * padded - (width - 1)
    out = np.zeros((n * padded, kernel.shape[2]), dtype=np.float32)
    for j in range(width):
        out[:total] += (flat @ kernel[j])[j:j + total]
    return out.reshape(n, padded, -1)[:, :steps]


def numpy_member(kind: str, w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Inference of one serfast member in NumPy (dropout is the identity): (n, classes)."""
    if kind == "linear":
        return _softmax(x @ w["out/0"] + w["out/1"])
    if kind == "seq":
        for k in range(2):
            kernel, bias = w[f"conv{k}/0"], w[f"conv{k}/1"]  # (5, c_in, c_out)
            x = _conv_same(x, kernel) + bias
            gamma, beta, mm, mv = (w[f"bn{k}/{i}"] for i in range(4))
            x = np.maximum((x - mm) * (gamma / np.sqrt(mv + 1e-3)) + beta, 0)
            t = x.shape[1] // 2
            x = x[:, :2 * t].reshape(len(x), t, 2, -1).max(2)
        x = np.concatenate([x.mean(1), x.max(1)], axis=1)
    h = np.maximum(x @ w["hidden/0"] + w["hidden/1"], 0)
    return _softmax(h @ w["out/0"] + w["out/1"])


def keras_forward(network) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Forward pass through a Keras model in batches of 512."""
    return lambda inputs: network.predict(inputs, batch_size=512, verbose=0)


def numpy_forward(kinds: list[str], weights: list[dict]) -> Callable:
    """Forward pass of a serfast ensemble without TensorFlow: mean member probabilities."""
    def forward(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.mean([numpy_member(k, w, inputs["seq" if k == "seq" else "stats"])
                        for k, w in zip(kinds, weights)], axis=0)
    return forward
