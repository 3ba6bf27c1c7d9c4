"""Ray engine: the plan's decoding split into blocks, decoded by Ray actors that load the inverter once each.

A row's text depends only on its target embedding, its seed and the precision (the decode engine keeps
rows independent of their batch), so blocks can go to any worker in any order and the output is the
local run's, byte for byte. Only decoding moves: reading, encoding, planning, labelling and writing stay
in the driver. Needs `pip install 'mixaug[ray]'`; the local path never imports this module.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import astuple
from pathlib import Path

import numpy as np

from ..errors import MixaugError
from ..inversion.decode import DecodeOptions, DecodeStats


def _ray():
    try:
        import ray
    except ImportError:
        raise MixaugError("--engine ray needs Ray: pip install 'mixaug[ray]' (or make install-ray)") from None
    return ray


class _DecodeWorker:
    """One actor: loads the inverter once, decodes blocks."""

    def __init__(self, checkpoint: str, device: str, precision: str, threads: int):
        import torch

        from ..inversion.invert import load_inverter

        torch.set_num_threads(threads)
        self.inverter = load_inverter(checkpoint, device, precision=precision)

    def decode(self, emb: np.ndarray, seeds: list[int], options: tuple, batch_size: int, anchors=None):
        stats = DecodeStats()
        texts = self.inverter.decode(emb, seeds, DecodeOptions(*options), batch_size, stats=stats, anchors=anchors)
        return texts, stats


class RayDecoder:
    """Decodes like `Inverter.decode`, on `num_workers` Ray actors. Joins the cluster named by RAY_ADDRESS
    if set, else starts a local one sized to this machine (and stops it on close)."""

    def __init__(self, checkpoint: str | Path, device: str, precision: str, num_workers: int | None = None):
        ray = _ray()
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(  # quiet: stderr carries our progress and errors, not Ray's start-up notices
                address=os.environ.get("RAY_ADDRESS") or None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        cpus = int(ray.available_resources().get("CPU", 1))
        self.workers = num_workers or max(1, cpus)
        per = max(1, cpus // self.workers)
        actor = ray.remote(_DecodeWorker).options(num_cpus=per, num_gpus=1 if device == "cuda" else 0)
        self.actors = [
            actor.remote(str(Path(checkpoint).resolve()), device, precision, per) for _ in range(self.workers)
        ]
        self.totals = DecodeStats()

    def decode(
        self,
        emb: np.ndarray,
        seeds: Sequence[int],
        options: DecodeOptions,
        batch_size: int,
        on_row: Callable[[int, str], None] | None = None,
        anchors: Sequence | None = None,
    ) -> list[str]:
        ray = _ray()
        n = len(emb)
        if n == 0:
            return []
        # blocks of whole batches, ~4 per worker so a slow block does not hold the others up
        size = max(batch_size, math.ceil(n / (4 * self.workers)))
        starts = list(range(0, n, size))
        texts: list[str | None] = [None] * n
        pending = {}
        for k, start in enumerate(starts):
            rows = slice(start, start + size)
            ref = self.actors[k % self.workers].decode.remote(
                np.ascontiguousarray(emb[rows]),
                [int(s) for s in seeds[rows]],
                astuple(options),
                batch_size,
                list(anchors[rows]) if anchors is not None else None,
            )
            pending[ref] = start
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            start = pending.pop(done[0])
            try:
                block, stats = ray.get(done[0])
            except ray.exceptions.RayError as exc:
                raise MixaugError(f"a Ray worker failed: {str(exc).splitlines()[0]}") from None
            self.totals.add(stats)
            for i, text in enumerate(block):
                texts[start + i] = text
                if on_row:
                    on_row(start + i, text)
        return texts  # type: ignore[return-value]

    def close(self) -> None:
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor)
        if self._owns:
            ray.shutdown()
