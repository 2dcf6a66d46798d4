"""Runs an ONNX model in onnxruntime on raw inputs, for tests/suite/io_onnx.rs.

    python run_onnx.py MODEL.onnx INPUT.f32 N,C,H,W OUTPUT.f32

INPUT.f32 holds N·C·H·W little-endian float32 values (NCHW, row-major); the
model's first output is written to OUTPUT.f32 the same way. The model is also
checked with onnx.checker when the `onnx` package is installed, and said so on
stderr either way. Exit status 3 means onnxruntime (or numpy) is missing.
"""

import sys


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    model_path, input_path, shape_text, output_path = sys.argv[1:]
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        print(f"run_onnx.py: {e}", file=sys.stderr)
        return 3
    try:
        import onnx
    except ImportError:
        print("run_onnx.py: onnx not installed, onnx.checker skipped", file=sys.stderr)
    else:
        onnx.checker.check_model(onnx.load(model_path), full_check=True)
        print("run_onnx.py: onnx.checker passed (full check)", file=sys.stderr)

    shape = tuple(int(d) for d in shape_text.split(","))
    x = np.fromfile(input_path, dtype="<f4").reshape(shape)
    options = ort.SessionOptions()
    # Keep the graph as written, so the numbers are those of the exported
    # operators and not of fusions onnxruntime might apply.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    (y,) = session.run(None, {name: x})[:1]
    y.astype("<f4").tofile(output_path)
    print(f"run_onnx.py: onnxruntime {ort.__version__}: {name} {list(x.shape)} -> {list(y.shape)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
