"""Compare exported models' model.onnx in onnxruntime with `qnas predict` on an IDX image file.

usage: onnx_compare.py QNAS IMAGES.idx[.gz] LABELS.idx[.gz] MODEL_DIR...

For each model folder (written by `qnas export --onnx`): normalizes the images as its
model.json says, runs model.onnx in onnxruntime (CPU, default optimizations), runs
`QNAS predict MODEL_DIR IMAGES --json` for qnas's logits, and prints one JSON line with the
top-1 agreement, the largest absolute logit difference (also with onnxruntime's optimizer
off), and both accuracies on the labels.
"""

import gzip
import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort


def idx(path: str) -> np.ndarray:
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw[4 + 4 * ndim :], dtype=np.uint8).reshape(dims)


def run(model: str, x: np.ndarray, optimize: bool) -> np.ndarray:
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return np.concatenate(
        [s.run(["logits"], {"input": x[i : i + 256]})[0] for i in range(0, len(x), 256)]
    )


def main() -> None:
    qnas, images, labels = sys.argv[1:4]
    pixels = idx(images).astype(np.float32) / 255.0
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    y = idx(labels)
    for d in sys.argv[4:]:
        info = json.load(open(f"{d}/model.json"))
        mean = np.array(info["normalization"]["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.array(info["normalization"]["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        x = ((pixels - mean) / std).astype(np.float32)
        out = subprocess.run(
            [qnas, "predict", d, images, "--json"], capture_output=True, check=True
        ).stdout
        ref = np.array([p["logits"] for p in json.loads(out)["predictions"]], dtype=np.float32)
        got = run(f"{d}/model.onnx", x, True)
        plain = run(f"{d}/model.onnx", x, False)
        print(
            json.dumps(
                {
                    "model": d,
                    "origin": info["origin"],
                    "images": len(x),
                    "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
                    "max_abs_diff": float(np.abs(got - ref).max()),
                    "max_abs_diff_unoptimized": float(np.abs(plain - ref).max()),
                    "onnxruntime_accuracy": float((got.argmax(1) == y).mean()),
                    "qnas_accuracy": float((ref.argmax(1) == y).mean()),
                    "fallbacks": info["onnx"]["fallbacks"],
                    "onnxruntime": ort.__version__,
                }
            )
        )


if __name__ == "__main__":
    main()
