"""Build ``serfast/features/voice_encoder.onnx``, the speaker encoder of the
``embedding`` columns and ``predict --turns``,
from Resemblyzer's pretrained GE2E voice encoder (Apache-2.0; its licence ships beside
the model as ``serfast/features/voice_encoder.LICENSE``).

    pip download resemblyzer==0.1.4 --no-deps -d /tmp/rz && pip install onnx
    python bench/build_voice_encoder.py /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl

The wheel's ``pretrained.pt`` (a legacy PyTorch pickle) is read without PyTorch by an
unpickler that admits only tensors, their storages and ordered dicts. The network (a
3-layer LSTM of 256 units over 40 mel bands, a 256-unit linear layer, ReLU, L2 norm:
Resemblyzer's ``VoiceEncoder.forward``) becomes ONNX ``LSTM`` nodes with the weights
stored as float16 (half the file) and cast to float32 on load. Its outputs are the
embedding and the second LSTM layer's outputs at every frame (``layer2``, (frames, batch,
256); serfast's store keeps their mean). The script checks the ONNX model through
onnxruntime against a NumPy forward pass of the float32 weights on random mel input and
prints the largest differences.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serfast", "features",
                   "voice_encoder.onnx")
HIDDEN, LAYERS, MELS = 256, 3, 40


class _Tensor(tuple):
    """(storage, offset, size, stride) of one tensor in the checkpoint."""


class _Storage:
    def __init__(self, key: str):
        self.key = key


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *_: _Tensor(
                (storage, offset, tuple(size), tuple(stride)))
        if (module, name) == ("torch", "FloatStorage"):
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refused {module}.{name}")

    def persistent_load(self, pid):
        _, kind, key, _location, _size, _view = pid
        if kind != "FloatStorage":
            raise pickle.UnpicklingError(f"refused storage {kind}")
        return _Storage(key)


def read_checkpoint(raw: bytes) -> dict[str, np.ndarray]:
    """The float32 tensors of ``model_state`` in a legacy (pre-zip) PyTorch file."""
    f = io.BytesIO(raw)
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(f)
    state = _Unpickler(f).load()["model_state"]
    data = {}
    for key in pickle.load(f):
        n = struct.unpack("<q", f.read(8))[0]
        data[key] = np.frombuffer(f.read(4 * n), "<f4")
    out = {}
    for name, (storage, offset, size, stride) in state.items():
        flat = data[storage.key]
        out[name] = np.lib.stride_tricks.as_strided(
            flat[offset:], size, [4 * s for s in stride]).astype(np.float32)
    return out


def _gates_onnx(w: np.ndarray) -> np.ndarray:
    """PyTorch's gate order (input, forget, cell, output) -> ONNX's (input, output,
    forget, cell), along axis 0."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build_onnx(w: dict[str, np.ndarray]):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def weight(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value.astype(np.float16), name + "_f16"))
        nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        return name

    inits += [numpy_helper.from_array(np.array([0], np.int64), "axis0"),
              numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    nodes.append(helper.make_node("Transpose", ["mels"], ["x0"], perm=[1, 0, 2]))
    x = "x0"
    for k in range(LAYERS):
        wi = weight(f"W{k}", _gates_onnx(w[f"lstm.weight_ih_l{k}"])[None])
        wh = weight(f"R{k}", _gates_onnx(w[f"lstm.weight_hh_l{k}"])[None])
        b = weight(f"B{k}", np.concatenate([_gates_onnx(w[f"lstm.bias_ih_l{k}"]),
                                            _gates_onnx(w[f"lstm.bias_hh_l{k}"])])[None])
        nodes.append(helper.make_node("LSTM", [x, wi, wh, b], [f"y{k}", f"h{k}"],
                                      hidden_size=HIDDEN))
        nodes.append(helper.make_node("Squeeze", [f"y{k}", "axis1"], [f"x{k + 1}"]))
        x = f"x{k + 1}"
    lw = weight("LW", w["linear.weight"].T)
    lb = weight("LB", w["linear.bias"])
    nodes += [helper.make_node("Identity", ["x2"], ["layer2"]),  # the second layer's outputs
              helper.make_node("Squeeze", [f"h{LAYERS - 1}", "axis0"], ["last"]),
              helper.make_node("MatMul", ["last", lw], ["lin"]),
              helper.make_node("Add", ["lin", lb], ["raw"]),
              helper.make_node("Relu", ["raw"], ["positive"]),
              helper.make_node("LpNormalization", ["positive"], ["embedding"], axis=1, p=2)]
    graph = helper.make_graph(
        nodes, "ge2e_voice_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", MELS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN]),
         helper.make_tensor_value_info("layer2", TensorProto.FLOAT,
                                       ["frames", "batch", HIDDEN])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="serfast bench/build_voice_encoder.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def numpy_forward(w: dict[str, np.ndarray], mels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resemblyzer's forward pass in float64: (batch, frames, 40) -> the embeddings (batch,
    256) and the second LSTM layer's outputs (batch, frames, 256)."""
    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    x = mels.astype(np.float64)
    for k in range(LAYERS):
        xi = x @ w[f"lstm.weight_ih_l{k}"].T + w[f"lstm.bias_ih_l{k}"] + w[f"lstm.bias_hh_l{k}"]
        h = np.zeros((len(x), HIDDEN))
        c = np.zeros((len(x), HIDDEN))
        hs = np.empty(x.shape[:2] + (HIDDEN,))
        for t in range(x.shape[1]):
            i, f, g, o = np.split(xi[:, t] + h @ w[f"lstm.weight_hh_l{k}"].T, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            hs[:, t] = h
        x = hs
        if k == 1:
            layer2 = hs
    e = np.maximum(h @ w["linear.weight"].T + w["linear.bias"], 0.0)
    return e / np.linalg.norm(e, axis=1, keepdims=True), layer2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="Resemblyzer's wheel, or its pretrained.pt")
    p.add_argument("--out", default=OUT)
    args = p.parse_args()
    if zipfile.is_zipfile(args.source):
        with zipfile.ZipFile(args.source) as z:
            raw = z.read("resemblyzer/pretrained.pt")
    else:
        with open(args.source, "rb") as fh:
            raw = fh.read()
    weights = read_checkpoint(raw)
    import onnx
    import onnxruntime as ort

    onnx.save(build_onnx(weights), args.out)
    mels = (np.random.default_rng(0).random((8, 160, MELS)) ** 4).astype(np.float32)
    session = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    got, got_layer2 = session.run(None, {"mels": mels})
    want, want_layer2 = numpy_forward(weights, mels)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB); largest difference "
          f"from the float32 weights' forward pass: {np.abs(got - want).max():.2e} "
          f"(embedding), {np.abs(got_layer2.transpose(1, 0, 2) - want_layer2).max():.2e} "
          f"(second layer's outputs)")


if __name__ == "__main__":
    sys.exit(main())
