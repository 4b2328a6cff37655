"""Run an exported model.onnx in onnxruntime and compare it with qnas's logits.

usage: onnx_check.py MODEL.onnx INPUTS.f32 LOGITS.f32 N C H W CLASSES

INPUTS.f32 holds N normalized images (little-endian float32, NCHW) and LOGITS.f32 qnas's
logits for them (N x CLASSES). Prints one JSON object: the number of images, the share of
images whose top-1 class agrees, the largest absolute logit difference, and the versions used.
Used by cli/tests/onnx.rs (run by .ci/run with onnxruntime from PyPI).
"""

import json
import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, inputs, logits = sys.argv[1:4]
    n, c, h, w, k = (int(a) for a in sys.argv[4:9])
    x = np.fromfile(inputs, dtype="<f4").reshape(n, c, h, w)
    ref = np.fromfile(logits, dtype="<f4").reshape(n, k)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    out = np.concatenate(
        [session.run(["logits"], {"input": x[i : i + 256]})[0] for i in range(0, n, 256)]
    )
    print(
        json.dumps(
            {
                "images": n,
                "top1_agreement": float((out.argmax(1) == ref.argmax(1)).mean()),
                "max_abs_diff": float(np.abs(out - ref).max()),
                "onnxruntime": ort.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
