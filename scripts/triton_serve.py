"""Serve a Triton model repository written by ``hearflow export --format triton`` with a real
Triton Inference Server on a machine without a GPU: NVIDIA's PyTriton (pip package
nvidia-pytriton) bundles the server binary and its Python backend, and each model's ONNX
file runs in ONNX Runtime inside a PyTriton infer function.

Triton's own ONNX Runtime and TensorRT backends are not in that pip package, so this is
how the tests and the loopback benchmark serve the graphs; on a GPU machine use NVIDIA's
tritonserver (container) on the same folder instead. The models, their inputs/outputs,
max_batch_size and dynamic batching are read from each config.pbtxt, so the repository
itself is what is served (TensorRT plan models ``*_trt`` are skipped: no TensorRT here).

Runs under the separate environment made by scripts/triton_venv.sh (Debian's python3):

    .venv-triton/bin/python scripts/triton_serve.py EXPORT_DIR --grpc-port 8001

Prints "ready <grpc port>" once the server answers, then serves until SIGINT/SIGTERM (exit 0),
or exits 1 when tritonserver or a model process dies: run it under a supervisor that restarts it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from tritonclient.grpc import model_config_pb2

ALIVE_CHECK_S = 0.5


def read_configs(repository: Path) -> list[model_config_pb2.ModelConfig]:
    """Every ONNX model's config.pbtxt in the repository (parsed: a malformed one fails here)."""
    configs = []
    for path in sorted(repository.glob("*/config.pbtxt")):
        cfg = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        if cfg.platform == "onnxruntime_onnx":
            configs.append(cfg)
    if not configs:
        sys.exit(f"error: {repository}: no ONNX models with a config.pbtxt (export with --format triton)")
    return configs


def infer_function(model_file: Path, outputs: list[str], threads: int):
    """A PyTriton infer function running ``model_file`` in ONNX Runtime on whole batches."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(model_file), opts, providers=["CPUExecutionProvider"])

    @batch
    def infer(**inputs):
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        return dict(zip(outputs, session.run(outputs, feed)))

    return infer


def bind(triton: Triton, cfg, repository: Path, threads: int) -> None:
    """Serve one config.pbtxt's model under its own name."""
    def tensors(specs):
        return [Tensor(name=t.name, dtype=np.float32, shape=tuple(t.dims)) for t in specs]

    outputs = [t.name for t in cfg.output]
    delay = cfg.dynamic_batching.max_queue_delay_microseconds
    triton.bind(
        model_name=cfg.name,
        infer_func=infer_function(repository / cfg.name / "1" / "model.onnx", outputs, threads),
        inputs=tensors(cfg.input), outputs=tensors(cfg.output),
        config=ModelConfig(max_batch_size=cfg.max_batch_size, batcher=DynamicBatcher(max_queue_delay_microseconds=delay)),
        strict=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("repository", type=Path, help="folder written by hearflow export --format triton")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per model (default 1)")
    p.add_argument("--log-file", type=Path, help="tritonserver's own log (default: its stderr)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    configs = read_configs(args.repository)
    config = TritonConfig(grpc_address=args.host, grpc_port=args.grpc_port, http_address=args.host,
                          http_port=args.http_port, metrics_port=args.metrics_port, log_verbose=0,
                          log_file=args.log_file, exit_timeout_secs=2)
    triton = Triton(config=config)
    for cfg in configs:
        bind(triton, cfg, args.repository, args.threads)
    # SIGTERM stops like Ctrl-C: the server and its model processes end with us
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        triton.run()
        print(f"ready {args.grpc_port} {' '.join(c.name for c in configs)}", flush=True)
        # tritonserver or a model's process can die under us (a crash in its Python backend):
        # then exit 1, so that a supervisor (systemd Restart=on-failure, a container restart
        # policy) starts a fresh server instead of a front that answers nothing
        while triton.is_alive():
            time.sleep(ALIVE_CHECK_S)
        print("error: the Triton server or one of its model processes died; exiting so it can be restarted",
              file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        triton.stop()


if __name__ == "__main__":
    main()
