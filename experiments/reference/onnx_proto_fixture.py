"""Write the ONNX model that supernet/src/onnx/tests.rs decodes with qnas's prost messages.

usage: onnx_proto_fixture.py OUT.onnx

Needs the `onnx` Python package, version 1.16.2 (IR version 10, opset 21: the onnx.proto that
supernet/src/onnx/proto.rs transcribes): `pip install "onnx==1.16.2"`. The model is built with
onnx.helper, so its bytes are those of ONNX's own protobuf serializer; it uses every field and
attribute type qnas's exporter writes (a negative int64 attribute among them), and passes
onnx.checker. The test checks what it decodes and that encoding it again gives the same bytes.
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper


def main() -> None:
    weight = helper.make_tensor(
        "w", TensorProto.INT8, [2, 1, 3, 3], np.arange(-9, 9, dtype=np.int8).tobytes(), raw=True
    )
    scale = helper.make_tensor(
        "s", TensorProto.FLOAT, [2], np.array([0.5, 0.25], dtype="<f4").tobytes(), raw=True
    )
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "s"], ["wf"], name="wf", axis=0),
        helper.make_node(
            "Conv",
            ["input", "wf"],
            ["c"],
            name="c",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[1, 1],
        ),
        helper.make_node("LeakyRelu", ["c"], ["r"], name="r", alpha=0.125),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="p"),
        helper.make_node("Flatten", ["p"], ["f"], name="f", axis=1),
        helper.make_node("Softmax", ["f"], ["logits"], name="logits", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "qnas",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weight, scale],
    )
    model = helper.make_model(
        graph,
        ir_version=10,
        opset_imports=[helper.make_opsetid("", 21)],
        producer_name="qnas",
        producer_version="0.1.0",
        doc_string="a model written by onnx.helper",
    )
    onnx.checker.check_model(model, full_check=True)
    with open(sys.argv[1], "wb") as f:
        f.write(model.SerializeToString())
    print(f"onnx {onnx.__version__}: {len(model.SerializeToString())} bytes")


if __name__ == "__main__":
    main()
