"""Faster UNet steps: CUDA-graph capture and background torch.compile, never a stale result.

The accelerator replaces the UNet's `forward` with a router. Each call is keyed on everything a
captured graph or compiled function bakes in (shapes, dtypes, device, the run's token with
scheduler and LoRA state, cross-attention arguments). A call whose key has a checked fast path
takes it; any other call runs eagerly, so a new size, LoRA or scheduler is always correct and is
made fast in the background. Every fast path is checked against the eager step on the call's own
inputs and on a second, different input (a value baked in at capture shows there), and refused
when its output holds NaN or infinity or differs from eager. A rejected compile still gets a CUDA
graph of the eager step.
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


def compare(fast: torch.Tensor, reference: torch.Tensor, tolerance: float = RELATIVE_TOLERANCE) -> str | None:
    """Why `fast` must not stand in for `reference`, or None when it may."""
    if not bool(torch.isfinite(reference).all()):
        return "cannot be checked: the eager step itself gives invalid values"
    if not bool(torch.isfinite(fast).all()):
        return "gives invalid values (NaN or infinity)"
    error = relative_error(fast, reference)
    if not error <= tolerance:  # also true for a NaN error
        return f"differs from eager by {error:.1%}"
    return None


def other_inputs(sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor) -> tuple:
    """A second UNet input that differs from the first in every argument."""
    return (sample.roll(1, dims=-1) * 0.5, torch.where(timestep >= 500, timestep - 250, timestep + 250),
            encoder_hidden_states.roll(1, dims=1))


def check_fast_step(fast: Callable, eager: Callable, inputs: tuple, kwargs: dict) -> str | None:
    """Why the step `fast` must not replace `eager`, or None. Both take (sample, timestep, encoder_hidden_states,
    **kwargs) and return the output tensor; they are compared on `inputs` and on other_inputs(*inputs)."""
    for probe, which in ((inputs, ""), (other_inputs(*inputs), " on a second input")):
        why = compare(fast(*probe, **kwargs), eager(*probe, **kwargs))
        if why:
            return why + which
    return None


class CapturedStep:
    """One UNet call recorded in a CUDA graph: replays copy the inputs into static buffers."""

    def __init__(self, fn: Callable, sample, timestep, encoder_hidden_states, kwargs: dict, pool=None):
        self.inputs = (sample.clone(), timestep.clone(), encoder_hidden_states.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph: lazy inits, cuDNN/cuBLAS choices
            for _ in range(2):
                fn(*self.inputs, **kwargs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            self.output = fn(*self.inputs, **kwargs)[0]

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
        self.ran: dict[str, int] = {}  # UNet calls by what actually ran them, e.g. {"CUDA graph of the eager step": 40}
        self._graphs: OrderedDict[tuple, CapturedStep] = OrderedDict()
        self._pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self._compiled_keys: set[tuple] = set()
        self._rejected: set[tuple] = set()  # eager only
        self._compile_rejected: set[tuple] = set()  # the eager step, captured where CUDA graphs work
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
        """Give the UNet its own forward back and stop the background compile.

        Waits for a compile already under way (torch.compile cannot be interrupted), so that it neither
        races the next run nor keeps this UNet in memory; then resets dynamo's caches, which are kept
        per code object and would otherwise fill up over model switches until recompiles stop.
        """
        self.unet.__dict__.pop("forward", None)
        self._graphs.clear()
        self._stopped = True
        self._jobs.put(None)
        self._idle.set()
        if self._thread is not None:
            self._thread.join()
        if self.compiled is not None:
            self.compiled = None
            torch._dynamo.reset()

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
        output, ran = None, "eager"
        if key not in self._rejected:
            output, ran = self._fast(key, sample, timestep, encoder_hidden_states, call_kwargs)
        if output is None:
            self.stats["eager"] += 1
            output = self.eager(sample, timestep, encoder_hidden_states, **call_kwargs)[0]
        else:
            self.stats["fast"] += 1
        self.ran[ran] = self.ran.get(ran, 0) + 1
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
            return UNet2DConditionOutput(sample=output)
        return (output,)

    def _fast(self, key, sample, timestep, encoder_hidden_states, call_kwargs) -> tuple[torch.Tensor | None, str]:
        """The output of a checked fast path for this call and what ran it; (None, "eager") when there is none yet."""
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
            return graph(sample, timestep, encoder_hidden_states), graph.kind
        compiled = self.compiled is not None and key not in self._compile_rejected
        if compiled and key not in self._compiled_keys:
            self._request_compile(key, sample, timestep, encoder_hidden_states, call_kwargs)
            return None, "eager"
        if self.use_graphs:
            return self._capture(key, self.compiled if compiled else self.eager, sample, timestep, encoder_hidden_states,
                                 call_kwargs)
        if not compiled or not self._compile_lock.acquire(blocking=False):
            return None, "eager"  # off CUDA only a compiled step is faster than eager
        try:
            return self.compiled(sample, timestep, encoder_hidden_states, **call_kwargs)[0], "compiled step"
        finally:
            self._compile_lock.release()

    def _capture(self, key, fn, sample, timestep, encoder_hidden_states, call_kwargs) -> tuple[torch.Tensor | None, str]:
        compiled = fn is not self.eager
        if not self._compile_lock.acquire(blocking=False):
            return None, "eager"
        try:
            captured = CapturedStep(fn, sample, timestep, encoder_hidden_states, call_kwargs, self._pool)
            why = check_fast_step(lambda *inputs, **_: captured(*inputs), lambda *inputs, **kw: self.eager(*inputs, **kw)[0],
                                  (sample, timestep, encoder_hidden_states), call_kwargs)
        except Exception as exc:  # noqa: BLE001 - a step that cannot be captured still runs eagerly
            log.warning("CUDA graph capture failed; running this shape eagerly: %s", exc)
            why = f"could not be captured: {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            self._compile_lock.release()
        step = "compiled step" if compiled else "eager step"
        if why:
            self._reject(key, f"CUDA graph of the {step} {why}", compiled)
            return None, "eager"
        captured.kind = f"CUDA graph of the {step}"
        self._graphs[key] = captured
        while len(self._graphs) > MAX_GRAPHS:
            self._graphs.popitem(last=False)
        self.stats["captured"] += 1
        return captured(sample, timestep, encoder_hidden_states), captured.kind

    def _reject(self, key, why: str, compiled: bool = False) -> None:
        """Never use the failed fast path again for `key`: a rejected compiled step leaves the eager step's graph."""
        (self._compile_rejected if compiled else self._rejected).add(key)
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
            compiled = self.compiled
            try:
                with torch.inference_mode(), self._compile_lock:
                    if self._stopped:
                        return
                    compiled(*inputs, **call_kwargs)  # compiles; the check below runs the compiled code
                    why = check_fast_step(lambda *a, **kw: compiled(*a, **kw)[0], lambda *a, **kw: self.eager(*a, **kw)[0],
                                          inputs, call_kwargs)
            except Exception as exc:  # noqa: BLE001 - compilation problems leave the eager path in charge
                log.warning("torch.compile failed; this shape stays eager: %s", exc)
                why = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            if why:
                self._reject(key, f"compiled step {why}", compiled=True)
                continue
            with self._ready:
                self._compiled_keys.add(key)
                self.stats["compiled"] += 1
                self._ready.notify_all()

    def wait_until_compiled(self, timeout: float | None = None) -> bool:
        """Block until every requested compile has finished (ready or rejected); False on timeout."""
        with self._ready:
            return self._ready.wait_for(lambda: not self.compiling, timeout)

    @property
    def compiling(self) -> bool:
        return not self._pending <= (self._compiled_keys | self._compile_rejected | self._rejected)
