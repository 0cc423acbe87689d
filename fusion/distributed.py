"""One code path for one process or many: ``torch.distributed`` set up from torchrun's environment.

``fusion train``, ``extract``, ``evaluate`` and ``ablate`` run the same code under
``torchrun --nproc_per_node N -m fusion ...`` as in one process. The world size comes from
the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, set by torchrun); without it every
helper here is a no-op on a world of one, so nothing has a "distributed version" beside it.

- :func:`setup` joins the process group once (NCCL for CUDA devices, Gloo for CPU) and
  returns this rank's device (``cuda:LOCAL_RANK`` under torchrun). Small control messages
  (error flags, token counts, Python objects) always travel over a Gloo group on the CPU.
- :func:`shard` / :func:`batch_starts` split work; :func:`gather_to_main`,
  :func:`all_gather`, :func:`broadcast` and :func:`all_reduce_sum` bring results together.
- Rank 0 alone writes files and prints (:func:`is_main`); the others meet it at the end of
  a :func:`together` block. Logging on the other ranks is limited to errors.
- Errors: :func:`run_command` (the CLI's runner) prints a rank's error as one line naming
  the rank, once however many ranks hit it, and exits non-zero; torchrun then stops the
  other ranks. :func:`together` is a sync point for work every rank does: if any rank
  raised in the block, the lowest such rank re-raises its own error and the others raise
  :class:`PeerFailedError`, which ends them quietly. A rank that dies (SIGKILL, out of
  memory) makes the others' next collective fail; they exit quietly and torchrun ends the
  job. So a failing rank's error is shown once, by that rank, and nothing hangs.

One module although longer than the ~350-line guide: the process group, the work split, the
collectives and the error agreement are one contract (each helper a no-op on a world of one),
and the commands use them together.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from fusion.errors import ConfigError, FusionError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Collectives wait this long for a late rank before failing (torch's own default is 30 min). A
# rank that fails or dies never leaves the others waiting this long: torchrun stops the job.
TIMEOUT_ENV = "FUSION_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 7200.0  # long: extraction ranks may finish their shares hours apart

_control: Any = None  # the Gloo group for CPU-side control messages (None: the default group)


class PeerFailedError(FusionError):
    """Another rank failed; its own error was reported there. This rank stops quietly."""

    exit_code = 1


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (torchrun sets it), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_initialized() -> bool:
    """Whether this process joined a process group (torch is not imported to find out)."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the job (1 without torchrun)."""
    if not is_initialized():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    if not is_initialized():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``), which picks its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """True on rank 0, which alone writes run files and prints."""
    return rank() == 0


def local_device(device: torch.device | str) -> torch.device:
    """``device`` for this rank: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and device.index is None and env_world_size() > 1:
        return torch.device("cuda", local_rank())
    return device


def setup(device: torch.device | str = "cpu") -> torch.device:
    """Join torchrun's process group (once) and return this rank's device.

    Without torchrun (``WORLD_SIZE`` unset or 1) nothing is initialised and ``device`` is
    returned as given. NCCL carries CUDA tensors (DDP's gradients on GPUs), Gloo CPU
    tensors; control messages always go over Gloo.

    Args:
        device: the device the caller would use in one process (``cpu``, ``cuda``, ``cuda:1``).
    """
    import torch
    import torch.distributed as dist

    global _control
    device = local_device(device)
    if device.type == "cuda" and env_world_size() > 1:
        torch.cuda.set_device(device)
    if env_world_size() <= 1 or is_initialized():
        return device
    # Collectives dispatch by tensor device: CUDA tensors over NCCL, CPU tensors over Gloo, so
    # a job that extracts on the CPU and then trains on GPUs shares one process group.
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    with _quiet_stdout():  # Gloo's C++ connection notices would mix with a --json result on stdout
        dist.init_process_group(backend=backend, timeout=timeout)
        _control = dist.new_group(backend="gloo", timeout=timeout) if "nccl" in backend else None
    if rank() != 0:  # logs and results from rank 0 only; errors still surface on stderr (run_command)
        logging.getLogger().setLevel(logging.ERROR)
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # the C++ side's prints too
        os.close(devnull)
    logger.info("process group: %d processes, backend %s, rank 0 on %s", world_size(), backend, device)
    return device


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null for the block (C++ prints included)."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def teardown() -> None:
    """Leave the process group (no-op when none was joined)."""
    import torch.distributed as dist

    global _control
    if is_initialized():
        dist.destroy_process_group()
    _control = None


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32).

    Raises:
        ConfigError: an unknown precision name.
    """
    import torch

    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise ConfigError(f"precision {precision!r} is unknown; use one of {', '.join(dtypes)}")
    dtype = dtypes[precision]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------------- work split
def shard(items: Sequence[T], index: int | None = None, count: int | None = None) -> list[T]:
    """This rank's share of ``items``: every ``count``-th item from ``index`` (disjoint, covering)."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    return list(items[index::count])


def batch_starts(num_items: int, batch_size: int) -> list[int]:
    """Start offsets of this rank's whole batches of ``batch_size`` (batch i goes to rank i mod N).

    Whole batches keep each batch's composition, padding and arithmetic what one process
    computes, so gathered results equal one process's exactly.
    """
    return shard(range(0, num_items, batch_size))


def split_batch(indices: Sequence[int], index: int | None = None, count: int | None = None) -> list[int]:
    """This rank's contiguous share of a global batch (sizes differ by at most one)."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    n = len(indices)
    lo, hi = (n * index) // count, (n * (index + 1)) // count
    return [int(i) for i in indices[lo:hi]]


# ---------------------------------------------------------------------------------- collectives
def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64, on the CPU control group)."""
    import torch
    import torch.distributed as dist

    if world_size() == 1:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=_control)
    return tensor.tolist()


def gather_to_main(obj: T) -> list[T] | None:
    """Every rank's ``obj`` in rank order on rank 0; None on the others."""
    import torch.distributed as dist

    if world_size() == 1:
        return [obj]
    out: list[Any] | None = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0, group=_control)
    return out


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj`` in rank order, on every rank."""
    import torch.distributed as dist

    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=_control)
    return out


def broadcast(obj: T) -> T:
    """Rank 0's ``obj`` on every rank."""
    import torch.distributed as dist

    if world_size() == 1:
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def unshard(parts: Sequence[Sequence[T]], num_items: int, batch_size: int) -> list[T]:
    """Undo :func:`batch_starts`: per-rank result lists (rank order) -> one list in item order."""
    count = len(parts)
    out: list[T] = []
    offsets = [0] * count
    for b, start in enumerate(range(0, num_items, batch_size)):
        r, n = b % count, min(batch_size, num_items - start)
        out.extend(parts[r][offsets[r] : offsets[r] + n])
        offsets[r] += n
    return out


def map_batches(fn: Callable[[Sequence[T]], list[Any]], items: Sequence[T], batch_size: int,
                progress: bool = False, desc: str = "decoding") -> list[Any]:
    """``fn`` over ``items`` in whole batches of ``batch_size``, shared by the ranks; results on every rank.

    Batch i is computed by rank i mod N exactly as one process computes it (same members, same
    padding), so the gathered list (in item order) equals one process's ``fn`` over the
    batches. An error on any rank stops every rank (:func:`together`).

    Args:
        fn: maps a batch (a slice of ``items``) to one result per item.
        items: the work, e.g. feature records.
        batch_size: items per call of ``fn``.
        progress: a tqdm bar over this rank's batches (rank 0 only).
        desc: the bar's label.
    """
    from fusion.progress import progress_bar

    starts = batch_starts(len(items), batch_size)
    mine: list[Any] = []
    with together():
        for start in progress_bar(starts, desc=desc, unit="batch", disable=not (progress and is_main()) or len(starts) < 2):
            out = fn(items[start : start + batch_size])
            if len(out) != len(items[start : start + batch_size]):
                raise ValueError(f"map_batches: {len(out)} results for a batch of {batch_size}")
            mine.extend(out)
    if world_size() == 1:
        return mine
    return unshard(all_gather(mine), len(items), batch_size)


# ---------------------------------------------------------------------------------- errors
def agree(error: BaseException | None) -> None:
    """A sync point every rank calls: if any rank brings an error, every rank raises.

    The lowest failing rank re-raises its own ``error``; the others raise
    :class:`PeerFailedError` (stopped quietly by :func:`run_command`).
    """
    import torch
    import torch.distributed as dist

    if world_size() == 1:
        if error is not None:
            raise error
        return
    me = rank() if error is not None else world_size()
    flag = torch.tensor([me], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=_control)
    first = int(flag.item())
    if first == world_size():
        return
    if error is not None and first == rank():
        raise error
    raise PeerFailedError(f"rank {first} failed")


@contextmanager
def together() -> Iterator[None]:
    """Run a block on every rank, then :func:`agree`. The block must hold no collectives."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 (shared with the other ranks, then re-raised)
        agree(err)
        raise
    agree(None)


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then on the other ranks (e.g. to create a store, then open it).

    An error on rank 0 stops every rank with rank 0's message only.
    """
    result: Any = None
    with together():
        if is_main():
            result = fn()
    with together():
        if not is_main():
            result = fn()
    return result


def _peer_lost(err: BaseException) -> bool:
    """Whether ``err`` is a collective that failed because another process went away."""
    import torch.distributed as dist

    dist_error = getattr(dist, "DistError", ())
    if dist_error and isinstance(err, dist_error):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL", "Gloo")
    )


def _report(command: str, text: str) -> None:
    """Print one rank's error line, unless another rank already printed the same error.

    The ranks meet in torchrun's key-value store (not a collective, so a rank stuck in a
    collective elsewhere cannot block it): the first error is printed, a later one only when
    it differs (a failure of that rank alone).
    """
    from torch.distributed import distributed_c10d

    show = True
    try:
        store = distributed_c10d._get_default_store()
        if store.add("fusion/errors", 1) == 1:
            store.set("fusion/first_error", text)
        else:
            store.wait(["fusion/first_error"], datetime.timedelta(seconds=5))
            show = store.get("fusion/first_error").decode("utf-8") != text
    except Exception:  # noqa: BLE001 (the store is gone: print rather than lose the error)
        show = True
    if show:
        print(f"fusion {command}: error: rank {rank()}: {text}", file=sys.stderr)


def run_command(func: Callable[[Any], int | None], args: Any, command: str) -> int:
    """Run a CLI command under one process or torchrun; leave the process group at the end.

    In one process this is ``func(args)``, and errors propagate to the CLI. Under torchrun
    the process group is joined first, a rank's error is printed as one line naming the rank,
    once however many ranks hit the same error (an unexpected error's traceback at ``-v``),
    and a rank stopped by another rank's failure exits quietly with status 1.
    """
    if env_world_size() <= 1:
        try:
            return int(func(args) or 0)
        finally:
            teardown()
    try:
        setup()  # every later error happens inside the job, where ranks can agree on who reports it
        return int(func(args) or 0)
    except PeerFailedError:
        return PeerFailedError.exit_code
    except FusionError as err:
        _report(command, str(err))
        return err.exit_code
    except Exception as err:  # noqa: BLE001
        if _peer_lost(err):
            logger.debug("stopped after another rank went away: %s", err)
            return PeerFailedError.exit_code
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        logger.debug("%s", "".join(traceback.format_exception(err)))
        _report(command, f"{type(err).__name__}: {first} (run with -v for the traceback)")
        return 1
    finally:
        teardown()
