"""Embedding with Ray Data: one encoder per actor, batches of a dataset through it.

>>> import ray, allatom.ray_data as ard                                   # doctest: +SKIP
>>> ray.init(num_cpus=2)                                                  # doctest: +SKIP
>>> ds = ray.data.read_text("glycans.txt")                                # a column "text"
>>> out = ard.embed_dataset(ds, model="preglycanaa-small", concurrency=2) # doctest: +SKIP
>>> out.write_parquet("embeddings/")                                      # doctest: +SKIP

Structure files: ``ray.data.read_binary_files(paths, include_paths=True)`` (or
``ray.data.from_items([{"path": p} ...])``) and ``column="path"``; every worker must see the
files (a shared filesystem), and a file gives a row per chain and per glycan tree. Each actor
computes with ``num_cpus`` threads (Ray sets ``OMP_NUM_THREADS`` to it, which the encoder
reads). Rows equal ``Encoder.embed`` on the same batch; across different batchings they agree
to float rounding (about 1e-6), not bit for bit, since a batch's composition changes the
kernels' summation order.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

import allatom


class EmbedActor:
    """A callable class for ``Dataset.map_batches``: loads the encoder once, then embeds the
    ``column`` of every batch (strings: glycans or sequences; ``path``: structure files).

    Output columns: the batch's own columns (except ``bytes``), ``input`` (what each row is:
    the glycan, the sequence, or the chain / glycan of a structure), ``embedding``
    (float32 ``[rows, dim]``; NaN where an input failed) and ``error`` ("" when it did not).
    """

    def __init__(
        self,
        model: Optional[str] = None,
        column: str = "text",
        kind: Optional[str] = None,
        threads: Optional[int] = None,
        **embed_kwargs,
    ):
        self.encoder = allatom.Encoder.from_pretrained(model, threads=threads)
        self.column = column
        self.kind = kind or ("structure" if column == "path" else None)
        self.embed_kwargs = embed_kwargs

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        items = [x.decode() if isinstance(x, bytes) else str(x) for x in batch[self.column]]
        rows, records = self.encoder.embed(items, kind=self.kind, return_records=True, **self.embed_kwargs)
        keep = [k for k in batch if k != "bytes"]
        if self.kind == "structure":
            # A file gives several rows: repeat its columns for each.
            where = {p: i for i, p in enumerate(items)}
            take = np.array([where[str(r.get("structure", ""))] for r in records], dtype=np.int64)
        else:
            take = np.arange(len(items))
        out = {k: np.asarray(batch[k])[take] for k in keep}
        out["input"] = np.array([str(r.get("input", "")) for r in records], dtype=object)
        out["embedding"] = rows
        out["error"] = np.array([r.get("error", "") for r in records], dtype=object)
        return out


def embed_dataset(
    ds,
    model: Optional[str] = None,
    column: str = "text",
    concurrency: int = 1,
    num_cpus: float = 1,
    threads: Optional[int] = None,
    batch_size: int = 1024,
    **kwargs,
):
    """``ds.map_batches(EmbedActor, ...)``: ``concurrency`` actors reserving ``num_cpus`` each
    and computing with ``threads`` (default: ``num_cpus`` rounded, at least 1), ``batch_size``
    inputs per batch; extra ``kwargs`` go to ``EmbedActor`` (``kind``, and ``Encoder.embed``'s
    ``format``, ``chunk`` …). Leave CPUs for Ray Data's read and write tasks: actors holding
    every CPU of the cluster starve them and the job waits forever (e.g. on
    ``ray.init(num_cpus=2)``, two actors with ``num_cpus=0.5``).
    """
    from ray.data import ActorPoolStrategy

    return ds.map_batches(
        EmbedActor,
        fn_constructor_kwargs=dict(model=model, column=column, threads=threads or max(1, round(num_cpus)), **kwargs),
        batch_format="numpy",
        batch_size=batch_size,
        compute=ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
    )
