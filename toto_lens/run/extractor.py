"""`extract`: a checkpoint's activations, losses and attention summaries over a dataset, into a zarr store.

The flow of one run (docs/cache-schema.md is the contract it writes):

1. Load the checkpoint and its tokenizer; open the data source (by default the validation clips of the
   first source the checkpoint was trained on, with the trainer's data seed).
2. Rank 0 takes the store's lock and creates the store, or checks that an existing one was written from
   the same weights and settings and continues it.
3. Every pending batch (batch b goes to rank b mod world under `torchrun`) is rendered and tokenized
   in a prefetch thread (`prefetch.Prefetch`, `prefetch` batches ahead) while the model runs the one
   before, run once through the model with reducing hooks (`reduce.run_batch`) and handed to a writer
   thread through a bounded queue, so that computing the next batch overlaps writing this one and memory
   stays flat however many clips there are. The writer marks the batch's clips complete after its
   chunks.
4. When every batch is marked, rank 0 writes `complete: true`.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toto_lens.io import human_bytes
from toto_lens.progress import Progress, report, say
from toto_lens.run.plan import ExtractPlan, prepare
from toto_lens.run.prefetch import Prefetch
from toto_lens.store.integrity import checked_store
from toto_lens.store.schema import (
    clip_labels,
    static_coordinates,
    used_dims,
)
from toto_lens.store.writer import (
    BatchWriter,
    ExtractError,
    StoreLock,
    batch_bytes,
    bytes_on_disk,
    done_batches,
    finish,
    open_or_create,
    redo_missing,
    write_coordinates,
)

QUEUE_BATCHES = 2  # batches waiting for the writer: bounds memory, still overlaps compute and I/O
PREFETCH_BATCHES = 2  # batches rendered and tokenized ahead of the model (0: each in turn, no thread)


@dataclass
class ExtractResult:
    path: Path
    clips: int
    batches_run: int
    batches_skipped: int
    seconds: float
    bytes: int
    complete: bool


def extract(
    ckpt: str | os.PathLike,
    *,
    data: str | None = None,
    split: str = "val",
    clips: int | None = None,
    batch_size: int = 16,
    out: str | os.PathLike | None = None,
    layers: str = "all",
    acts: tuple[str, ...] = ("pooled", "frame"),
    token_clips: int | None = None,
    attn: tuple[str, ...] = (),
    pattern_clips: int = 4,
    dtype: str = "float16",
    autocast: str = "float32",
    device: str | None = None,
    tokenizer: str | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop_after: int | None = None,
    trust_code: bool = False,
    note: Callable[[str], None] | None = None,
    prefetch: int = PREFETCH_BATCHES,
) -> ExtractResult | ExtractPlan:
    """Extract into the store (see the module docstring); returns the plan instead when dry_run.

    progress (`toto_lens.progress`) hears of each batch rank 0 writes: clips done (under torchrun its own
    batches times the number of processes), clips/s, and the store's size on disk.
    stop_after: return after this many batches of this run (the store stays resumable), for tests.
    trust_code: allow a checkpoint or tokenizer whose spec names code (an external factory) to import it.
    note: called (on rank 0) with a sentence saying what the store holds so far and how to continue,
    once the store is open and after every batch written: what the CLI prints on Ctrl-C.
    prefetch: batches rendered and tokenized ahead in a background thread while the model runs; 0 does
    each batch in turn in this thread. The store is the same either way.
    autocast: the forward pass's compute dtype (`torch.autocast`): "bfloat16" on GPUs (`--device cuda
    --autocast bfloat16`) halves the time and memory of large models; activations are reduced and the
    loss computed in float32 either way, and stored as `dtype`. Recorded in the store's request, so a
    store is never continued in another precision.

    A store that is continued is first checked by a listing: the batches marked complete whose chunk
    files are missing are extracted again (`toto-lens verify --repair` marks the batches of corrupt
    chunks the same way).
    """
    import torch

    from toto_lens import distributed as dist
    from toto_lens.checkpoints import load_checkpoint
    from toto_lens.io import check_writable
    from toto_lens.store.reader import cache_dir

    if not dry_run:  # before the checkpoint is loaded: an unwritable place fails at once
        check_writable(Path(out) if out else cache_dir(ckpt), what="--out")
    info = dist.setup(device)
    try:
        ck = load_checkpoint(ckpt, device=info.device, trust_code=trust_code)
        plan, source, tok, layout, attrs = prepare(
            ck, data=data, split=split, clips=clips, batch_size=batch_size, out=out, layers=layers,
            acts=acts, token_clips=token_clips, attn=attn, pattern_clips=pattern_clips, dtype=dtype, autocast=autocast,
            tokenizer=tokenizer,
        )  # fmt: skip
        if dry_run:
            return plan
        if info.main:
            say(progress, "extract", f"checkpoint {ck.name}, {plan.dataset} ({plan.shape.clip} clips), layers "
                f"{', '.join(map(str, plan.request.layers))} → {plan.path}")  # fmt: skip
        lock = StoreLock(plan.path)
        if info.main:
            lock.acquire()
        try:
            group = _open_on_all_ranks(info, plan, attrs, overwrite, layout)
            done = done_batches(group, plan.request.batch_size)
            pending = [b for b in range(plan.n_batches) if not done[b]][info.rank :: info.world]
            if stop_after is not None:
                pending = pending[:stop_after]
            kept = _Kept(group, plan, int(done.sum()), note if info.main else None)
            t0 = time.perf_counter()
            with torch.inference_mode():
                _run(ck.model, group, plan, source, tok, layout, pending, info, progress, kept, prefetch)
            dist.barrier(info)
            complete = bool(done_batches(group, plan.request.batch_size).all())
            if complete and info.main and not group.attrs.get("complete"):
                finish(group, plan.path)
            dist.barrier(info)  # no rank walks the store while rank 0 rewrites its metadata
            return ExtractResult(
                path=plan.path,
                clips=plan.shape.clip,
                batches_run=len(pending),
                batches_skipped=int(done.sum()),
                seconds=time.perf_counter() - t0,
                bytes=bytes_on_disk(plan.path),
                complete=complete,
            )
        finally:
            lock.release()
    finally:
        dist.teardown(info)


def _open_on_all_ranks(info, plan: ExtractPlan, attrs, overwrite: bool, layout):
    """Rank 0 creates or checks the store; the others wait and open it. An error on rank 0 stops all."""
    import torch
    import zarr

    failure: Exception | None = None
    group = None
    if info.main:
        try:
            group, resumed = open_or_create(
                plan.path, attrs, plan.variables, plan.shape, plan.request.batch_size, overwrite
            )
            coords = static_coordinates(
                plan.shape, layout.frame_of_position, layout.row_of_position, layout.col_of_position,
                used_dims(plan.variables),
            )  # fmt: skip
            if not resumed:
                write_coordinates(group, coords)
                group.attrs.update({"arrays_ready": True})
            else:
                redo_missing(group, plan.path, coords)
        except Exception as e:  # noqa: BLE001 - re-raised below, after telling the other ranks
            failure = e
    if info.active:
        flag = torch.tensor([1 if failure else 0])
        torch.distributed.broadcast(flag, src=0)
        if flag.item() and failure is None:
            raise ExtractError(f"rank 0 could not prepare {plan.path}; see its message")
    if failure is not None:
        raise failure
    if group is None:
        group = zarr.open_group(store=checked_store(plan.path, read_only=False), mode="r+")
    return group


class _Kept:
    """Tells `note` what the store holds (batches marked complete, read from the store itself, so under
    torchrun the other ranks' batches count too) once it is open and after each batch: what Ctrl-C keeps."""

    def __init__(self, group, plan: ExtractPlan, done: int, note: Callable[[str], None] | None) -> None:
        self.group, self.plan, self.done, self.note = group, plan, done, note
        self.tell(done)

    def written(self) -> None:
        if self.note is not None:
            self.tell(int(done_batches(self.group, self.plan.request.batch_size).sum()))

    def tell(self, done: int) -> None:
        if self.note is not None:
            self.note(
                f"kept {done} of {self.plan.n_batches} batches in {self.plan.path}; run the same command "
                "to resume"
            )


def _run(
    model, group, plan: ExtractPlan, source, tok, layout, pending, info, progress, kept: _Kept, prefetch: int
) -> None:
    import torch

    from toto_lens.run.reduce import run_batch

    request, B = plan.request, plan.request.batch_size
    done_before = kept.done
    written = bytes_on_disk(plan.path) if info.main and progress else 0
    state = {"clips": done_before * B, "bytes": written, "new": 0}
    t0 = time.perf_counter()
    work: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
    errors: list[BaseException] = []
    out = BatchWriter(group, request.layers)

    def writer() -> None:
        while (item := work.get()) is not None:
            if errors:
                continue  # drain after a failure so the producer never blocks
            start, stop, arrays = item
            try:
                out.write(start, arrays)  # acts_token / attn_pattern may cover fewer clips
                out.write(start, {"complete": np.ones(stop - start, np.uint8)})  # after every chunk
                kept.written()
                if info.main and progress:
                    state["new"] += (stop - start) * info.world
                    state["clips"] = min(done_before * B + state["new"], plan.shape.clip)
                    state["bytes"] += batch_bytes(plan.path, plan.variables, B, start, stop) * info.world
                    rate = state["new"] / (time.perf_counter() - t0)
                    report(progress, "extract", state["clips"], plan.shape.clip, "clips",
                           **{"clips/s": rate, "store": human_bytes(state["bytes"])})  # fmt: skip
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                errors.append(e)

    def inputs(b: int) -> tuple[int, int, np.ndarray, dict[str, np.ndarray]]:
        """Batch b's clips rendered and tokenized, with their masks and labels (in the prefetch thread)."""
        start, stop = b * B, min((b + 1) * B, plan.shape.clip)
        clips = [source[i] for i in range(start, stop)]
        tokens = layout.encode_clips(clips, tok)
        extra = clip_labels(clips, plan.shape.labels)
        if any(v.name == "masks" for v in plan.variables):
            extra["masks"] = np.stack([c.masks for c in clips])
        return start, stop, tokens, extra

    thread = threading.Thread(target=writer, name="toto-lens-writer", daemon=True)
    thread.start()
    batches = Prefetch(pending, inputs, depth=prefetch, name="toto-lens-prefetch")
    try:
        for start, stop, ids, extra in batches:
            if errors:
                break
            tokens = torch.as_tensor(ids, device=info.device)
            arrays = run_batch(
                model,
                tokens,
                layout,
                request,
                token_rows=max(0, min(stop, request.token_clips) - start),
                pattern_rows=max(0, min(stop, request.pattern_clips) - start),
            )
            arrays.update(extra)
            work.put((start, stop, arrays))
    finally:
        try:
            batches.close()  # the producer stops first: it may be making the next batch
        finally:
            work.put(None)
            thread.join()
    if errors:
        raise errors[0]
