"""The ``triton`` backend: the two graphs run on a Triton Inference Server, over gRPC.

    load_backend("exports/htf", "triton:grpc://gpu-server:8001/hearflow?timeout=0.5")

The engine on the robot or camera box keeps capture, optical flow and the audio windows;
only the network calls go to the server, where Triton's dynamic batching merges the
requests of every engine that shares it. The model argument stays a local export folder
(``hearflow export --format triton``, the same folder the server was given): its
manifest gives the PreprocessConfig the inputs are built with, and on connecting the
client checks that the server's models have the manifest's inputs and outputs (and, when
their config carries it, the same source weights).

URL: ``triton:grpc://HOST:PORT[/PREFIX][?timeout=S&trt=1]``; the models are
``PREFIX_audio`` and ``PREFIX_visual`` (PREFIX default ``hearflow``; ``trt=1``: the
TensorRT plan models ``PREFIX_*_trt``); ``timeout``: seconds a request may take (default 2).

Failures while running (see :class:`TritonClient`): a request that times out or finds the
server unreachable raises :class:`BackendUnavailable` at once (that frame is lost, the
engine goes on); the next attempt waits a backoff (0.25 s doubling to 2 s), so a
returning server is picked up within about 2 s. Any other server error is fatal.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import numpy as np

from hearflow.errors import HearflowError, MissingDependency
from hearflow.runtime.interface import Backend, BackendUnavailable, f32
from hearflow.runtime.manifest import GRAPHS, TRITON_PREFIX, read_manifest, triton_model_name

SCHEME = "triton:"
DEFAULT_TIMEOUT_S = 2.0
BACKOFF_S = (0.25, 2.0)
"""First and longest wait between attempts while the server is unreachable."""
INSTALL_HINT = "pip install 'hearflow[triton]'"
TRANSIENT = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED")
"""gRPC statuses that mean "not now" (server down, restarting or too slow), not a wrong request."""



def parse_url(spec: str) -> dict:
    """``triton:grpc://HOST:PORT[/PREFIX][?timeout=S&trt=1]`` → {address, prefix, timeout, trt}."""
    if not spec.startswith(SCHEME):
        raise HearflowError(f"not a triton backend: {spec!r}")
    url = urlsplit(spec[len(SCHEME):])
    if url.scheme != "grpc" or not url.hostname or not url.port:
        raise HearflowError(f"backend {spec!r}: expected triton:grpc://HOST:PORT[/MODEL_PREFIX]")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    unknown = set(query) - {"timeout", "trt"}
    if unknown:
        raise HearflowError(f"backend {spec!r}: unknown option {sorted(unknown)[0]!r} (timeout, trt)")
    try:
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT_S))
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise HearflowError(f"backend {spec!r}: timeout must be a number of seconds > 0")
    prefix = url.path.strip("/") or TRITON_PREFIX
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return {"address": f"{host}:{url.port}", "prefix": prefix, "timeout": timeout,
            "trt": query.get("trt", "0") in ("1", "true", "yes")}


def _grpc():
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise MissingDependency(f"the triton backend needs tritonclient: {INSTALL_HINT}") from None
    return grpcclient, InferenceServerException


class TritonClient:
    """One gRPC connection with the retry policy: ``infer`` fails fast while the server is
    known to be down, and tries again once the backoff has passed."""

    def __init__(self, address: str, timeout: float):
        self.grpc, self.error_type = _grpc()
        self.address, self.timeout = address, timeout
        # gRPC's own reconnect backoff grows to minutes by default: keep it at our scale
        args = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", int(BACKOFF_S[1] * 1000))]
        self.client = self.grpc.InferenceServerClient(address, channel_args=args)
        self.down_since: float | None = None
        self.retry_at = 0.0
        self.backoff = BACKOFF_S[0]
        self.failures = 0
        self.checked = False
        """Set once the models were found: from then on, missing models mean a server (re)starting."""

    def call(self, fn, *args, **kwargs):
        """``fn(*args, client_timeout=timeout)`` under the retry policy."""
        now = time.monotonic()
        if self.down_since is not None and now < self.retry_at:
            raise BackendUnavailable(f"Triton server {self.address} unreachable for {now - self.down_since:.1f} s; "
                                     f"retrying in {self.retry_at - now:.2f} s")
        try:
            result = fn(*args, client_timeout=self.timeout, **kwargs)
        except self.error_type as exc:
            status = str(exc.status() or "")
            # the models were there when we connected: a server without them is (re)starting
            message = exc.message() or ""
            loading = self.checked and ("unknown model" in message or "not ready" in message)
            if status not in TRANSIENT and not loading:
                raise HearflowError(f"Triton server {self.address}: {exc.message()}") from None
            self._failed(now)
            what = "timed out" if "DEADLINE" in status else "loading its models" if loading else "unreachable"
            raise BackendUnavailable(f"Triton server {self.address} {what} "
                                     f"({self.timeout:g} s timeout); retrying in {self.backoff:.2f} s") from None
        self.down_since, self.backoff = None, BACKOFF_S[0]
        return result

    def _failed(self, now: float) -> None:
        self.failures += 1
        if self.down_since is None:
            self.down_since, self.backoff = now, BACKOFF_S[0]
        else:
            self.backoff = min(self.backoff * 2, BACKOFF_S[1])
        self.retry_at = now + self.backoff

    def close(self) -> None:
        self.client.close()


class TritonBackend(Backend):
    """The export folder's graphs, run by a Triton Inference Server (see the module docstring).

    path: the local export folder (its manifest: PreprocessConfig, inputs and outputs).
    url: ``triton:grpc://HOST:PORT[/PREFIX][?timeout=S&trt=1]``.
    The server must be up when the backend is made (a clear error otherwise); later
    outages are retried.
    """

    name = "triton"
    precision = "fp32"

    def __init__(self, path, url: str, device: str = "auto", threads: int = 0):
        opts = parse_url(url)
        self.manifest = read_manifest(path)
        self.preprocess = self.manifest.preprocess
        self.model_config = self.manifest.model_config
        self.uses_flow = self.manifest.uses_flow
        self.source = str(path)
        self.url = url
        self.device = "remote"  # the server decides (its instance groups); the url says where
        self.models = {g: triton_model_name(opts["prefix"], g, plan=opts["trt"]) for g in GRAPHS}
        self.conn = TritonClient(opts["address"], opts["timeout"])
        self.max_batch = {g: self._check_model(g) for g in GRAPHS}
        self.conn.checked = True
        self._visual_inputs = self.manifest.input_names("visual")

    def _check_model(self, graph: str) -> int:
        """The server's ``graph`` model against the manifest; returns its max_batch_size."""
        name, where = self.models[graph], f"Triton server {self.conn.address}"
        try:
            cfg = self.conn.call(self.conn.client.get_model_config, name, as_json=True)["config"]
        except BackendUnavailable:
            raise HearflowError(f"{where}: not reachable (is tritonserver running there, with its gRPC port?)") from None
        except HearflowError as exc:
            raise HearflowError(f"{exc} (serve the folder written by `hearflow export --format triton`)") from None
        spec = self.manifest.graphs[graph]
        for kind, key in (("input", "inputs"), ("output", "outputs")):
            want = {t["name"]: [d if isinstance(d, int) else -1 for d in t["shape"][1:]] for t in spec[key]}
            have = {t["name"]: [int(d) for d in t.get("dims", [])] for t in cfg.get(kind, [])}
            if want != have:
                raise HearflowError(f"{where}: model {name} has {kind}s {have}, but {self.source} has {want} "
                                    "(the server runs another model)")
        sha = cfg.get("parameters", {}).get("hearflow.source_sha256", {}).get("string_value")
        if sha and sha != self.manifest.data["source"]["weights_sha256"]:
            raise HearflowError(f"{where}: model {name} was exported from other weights than {self.source}")
        return int(cfg.get("max_batch_size", 0)) or 1

    def _infer(self, graph: str, feed: dict[str, np.ndarray]) -> np.ndarray:
        """One graph on ``feed``, in chunks of the model's max_batch_size."""
        grpc, name, step = self.conn.grpc, self.models[graph], self.max_batch[graph]
        output = self.manifest.graphs[graph]["outputs"][0]["name"]
        n = len(next(iter(feed.values())))
        parts = []
        for i in range(0, n, step):
            inputs = []
            for key, value in feed.items():
                x = f32(value[i:i + step])
                inputs.append(grpc.InferInput(key, list(x.shape), "FP32"))
                inputs[-1].set_data_from_numpy(x)
            result = self.conn.call(self.conn.client.infer, name, inputs,
                                    outputs=[grpc.InferRequestedOutput(output)])
            parts.append(result.as_numpy(output))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def embed_audio(self, spectrograms: np.ndarray) -> np.ndarray:
        return self._infer("audio", {"spectrogram": spectrograms})

    def localize(self, frames: np.ndarray, flows: np.ndarray | None, audio_embeddings: np.ndarray) -> np.ndarray:
        feed = {"frame": frames}
        if "flow" in self._visual_inputs:
            if flows is None:
                raise HearflowError("this model uses optical flow: pass flows")
            feed["flow"] = flows
        feed["audio_embedding"] = audio_embeddings
        return self._infer("visual", feed)

    def describe(self) -> str:
        return f"{self.name} backend ({self.url}), model {self.source}"
