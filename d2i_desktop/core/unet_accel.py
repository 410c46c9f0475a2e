"""Faster UNet steps: CUDA-graph capture and background torch.compile, never a stale result.

The accelerator replaces the UNet's `forward` with a router. Each call is keyed on everything a
captured graph or compiled function bakes in (shapes, dtypes, device, the run's token with
scheduler and LoRA state, cross-attention arguments). A call whose key has a checked fast path
takes it; any other call runs eagerly, so a new size, LoRA or scheduler is always correct and is
made fast in the background. Every fast path is checked once against the eager result.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)

MAX_GRAPHS = 2  # graphs share one memory pool: safe, since each output is copied out before the next replay
RELATIVE_TOLERANCE = 2e-2  # fp16 kernels differ a little from eager ones; a wrong graph differs by ~100%


def configure_compile_cache(folder: Path) -> Path:
    """Keep inductor's FX-graph, AOTAutograd and Triton caches in `folder` so a restart compiles from cache.

    A cache folder the user chose (TORCHINDUCTOR_CACHE_DIR) is kept; torch's own default, which it
    writes into the environment on import and which lives in the temporary folder, is replaced.
    """
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or os.path.abspath(current) == os.path.abspath(default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
        os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    cache = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def relative_error(fast: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.float()
    return float((fast.float() - reference).norm() / reference.norm().clamp_min(1e-12))


class CapturedStep:
    """One UNet call recorded in a CUDA graph: replays copy the inputs into static buffers."""

    def __init__(self, fn: Callable, sample, timestep, encoder_hidden_states, kwargs: dict, pool=None):
        self.inputs = (sample.clone(), timestep.clone(), encoder_hidden_states.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph: lazy inits, cuDNN/cuBLAS choices
            for _ in range(2):
                reference = fn(*self.inputs, **kwargs)[0]
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            self.output = fn(*self.inputs, **kwargs)[0]
        self.graph.replay()
        self.error = relative_error(self.output, reference)

    def __call__(self, sample, timestep, encoder_hidden_states) -> torch.Tensor:
        for static, value in zip(self.inputs, (sample, timestep, encoder_hidden_states)):
            static.copy_(value)
        self.graph.replay()
        return self.output.clone()


class UNetAccelerator:
    """Routes `unet.forward` to a fast path ready for the exact call, else runs it eagerly.

    mode "cuda-graphs": capture the eager step on the first call of a key (a fraction of a second).
    mode "torch-compile": compile and warm up on a background thread; once a key is ready, use the
    compiled function (captured in a CUDA graph on CUDA). Not thread-safe for callers: one worker
    thread generates; only the background compile runs beside it.
    """

    def __init__(self, unet: torch.nn.Module, mode: str, compile_mode: str = "default", backend: str = "inductor",
                 cache_dir: Path | None = None):
        if mode not in ("cuda-graphs", "torch-compile"):
            raise ValueError(f"unknown acceleration mode {mode!r}")
        self.unet = unet
        self.mode = mode
        self.use_graphs = next(unet.parameters()).device.type == "cuda"
        if mode == "cuda-graphs" and not self.use_graphs:
            raise ValueError("CUDA graphs need the UNet on a CUDA device")
        self.eager = type(unet).forward.__get__(unet)  # the class's forward, whatever wraps the instance
        self.compiled = None
        if mode == "torch-compile":
            if cache_dir is not None:
                configure_compile_cache(cache_dir)
            torch_mode = None if compile_mode == "default" else compile_mode
            self.compiled = torch.compile(self.eager, mode=torch_mode, backend=backend, dynamic=False)
        self.run_token: object = None
        self.stats = {"eager": 0, "fast": 0, "captured": 0, "compiled": 0, "rejected": 0}
        self._graphs: OrderedDict[tuple, CapturedStep] = OrderedDict()
        self._pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self._compiled_keys: set[tuple] = set()
        self._rejected: set[tuple] = set()
        self._pending: set[tuple] = set()
        self._compile_lock = threading.Lock()  # one caller of the compiled function at a time
        self._ready = threading.Condition()
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()  # compiles start between runs: tracing holds the GIL the eager run needs
        self._idle.set()
        self._stopped = False
        self.errors: list[str] = []
        unet.forward = self.forward

    def remove(self) -> None:
        """Give the UNet its own forward back; a background compile still running is abandoned."""
        self.unet.__dict__.pop("forward", None)
        self._graphs.clear()
        self._stopped = True
        self._jobs.put(None)
        self._idle.set()

    def begin_run(self, token: object) -> None:
        """State that every call of the coming run shares (scheduler, LoRA weights, ...).

        The weights' storage addresses join the key: a graph reads weights from fixed addresses, so
        replaced weights (not ones changed in place, which it sees) must not meet an old graph.
        """
        self.run_token = (token, hash(tuple(p.data_ptr() for p in self.unet.parameters())))
        self._idle.clear()

    def end_run(self) -> None:
        """The run is over: waiting compiles may start."""
        self._idle.set()

    # -- routing ---------------------------------------------------------------------
    def forward(self, sample, timestep, encoder_hidden_states, *args, cross_attention_kwargs=None, return_dict=True,
                **kwargs):
        if args or kwargs or not torch.is_tensor(timestep) or not torch.is_inference_mode_enabled():
            return self.eager(sample, timestep, encoder_hidden_states, *args, cross_attention_kwargs=cross_attention_kwargs,
                              return_dict=return_dict, **kwargs)
        call_kwargs = {"cross_attention_kwargs": cross_attention_kwargs, "return_dict": False}
        key = (self.run_token, tuple(sample.shape), sample.dtype, sample.device, tuple(timestep.shape), timestep.dtype,
               timestep.device, tuple(encoder_hidden_states.shape), encoder_hidden_states.dtype,
               repr(cross_attention_kwargs))
        output = None
        if key not in self._rejected:
            output = self._fast(key, sample, timestep, encoder_hidden_states, call_kwargs)
        if output is None:
            self.stats["eager"] += 1
            output = self.eager(sample, timestep, encoder_hidden_states, **call_kwargs)[0]
        else:
            self.stats["fast"] += 1
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
            return UNet2DConditionOutput(sample=output)
        return (output,)

    def _fast(self, key, sample, timestep, encoder_hidden_states, call_kwargs) -> torch.Tensor | None:
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
            return graph(sample, timestep, encoder_hidden_states)
        if self.compiled is not None and key not in self._compiled_keys:
            self._request_compile(key, sample, timestep, encoder_hidden_states, call_kwargs)
            return None
        fn = self.eager if self.compiled is None else self.compiled
        if not self.use_graphs:
            if not self._compile_lock.acquire(blocking=False):
                return None
            try:
                return fn(sample, timestep, encoder_hidden_states, **call_kwargs)[0]
            finally:
                self._compile_lock.release()
        return self._capture(key, fn, sample, timestep, encoder_hidden_states, call_kwargs)

    def _capture(self, key, fn, sample, timestep, encoder_hidden_states, call_kwargs) -> torch.Tensor | None:
        if not self._compile_lock.acquire(blocking=False):
            return None
        try:
            captured = CapturedStep(fn, sample, timestep, encoder_hidden_states, call_kwargs, self._pool)
        except Exception as exc:  # noqa: BLE001 - a step that cannot be captured still runs eagerly
            log.warning("CUDA graph capture failed; running this shape eagerly: %s", exc)
            self._reject(key, f"capture failed: {type(exc).__name__}: {exc}")
            return None
        finally:
            self._compile_lock.release()
        if captured.error > RELATIVE_TOLERANCE:
            self._reject(key, f"captured step differs from eager by {captured.error:.1%}")
            return None
        self._graphs[key] = captured
        while len(self._graphs) > MAX_GRAPHS:
            self._graphs.popitem(last=False)
        self.stats["captured"] += 1
        return captured.output.clone()

    def _reject(self, key, why: str) -> None:
        self._rejected.add(key)
        self.stats["rejected"] += 1
        self.errors.append(why)
        with self._ready:
            self._ready.notify_all()

    # -- background compile ------------------------------------------------------------
    def _request_compile(self, key, sample, timestep, encoder_hidden_states, call_kwargs) -> None:
        with self._ready:
            if key in self._pending:
                return
            self._pending.add(key)
        inputs = (sample.clone(), timestep.clone(), encoder_hidden_states.clone())
        self._jobs.put((key, inputs, call_kwargs))
        if self._thread is None:
            self._thread = threading.Thread(target=self._compile_loop, name="d2i-unet-compile", daemon=True)
            self._thread.start()

    def _compile_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._idle.wait()
            if self._stopped:
                return
            key, inputs, call_kwargs = job
            try:
                with torch.inference_mode(), self._compile_lock:
                    fast = self.compiled(*inputs, **call_kwargs)[0]
                    fast = self.compiled(*inputs, **call_kwargs)[0]
                    reference = self.eager(*inputs, **call_kwargs)[0]
                error = relative_error(fast, reference)
            except Exception as exc:  # noqa: BLE001 - compilation problems leave the eager path in charge
                log.warning("torch.compile failed; this shape stays eager: %s", exc)
                self._reject(key, f"compile failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if error > RELATIVE_TOLERANCE:
                self._reject(key, f"compiled step differs from eager by {error:.1%}")
                continue
            with self._ready:
                self._compiled_keys.add(key)
                self.stats["compiled"] += 1
                self._ready.notify_all()

    def wait_until_compiled(self, timeout: float | None = None) -> bool:
        """Block until every requested compile has finished (ready or rejected); False on timeout."""
        with self._ready:
            return self._ready.wait_for(lambda: self._pending <= (self._compiled_keys | self._rejected), timeout)

    @property
    def compiling(self) -> bool:
        return not self._pending <= (self._compiled_keys | self._rejected)
