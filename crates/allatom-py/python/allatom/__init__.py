"""allatom: all-atom encoders for biomolecules, from Rust.

>>> import allatom
>>> enc = allatom.Encoder.from_pretrained()          # the built-in default, preglycanaa-small
>>> enc.embed(["Neu5Ac(a2-3)Gal(b1-4)GlcNAc", "Gal(b1-4)Glc"]).shape
(2, 384)
>>> allatom.Glycan("Neu5Ac(a2-3)Gal(b1-4)GlcNAc").formula
'C25H42N2O19'

Every encoder family (GlycanAA, RGCN, Vabs-Net, ESM-2 / ESM-AA) loads through
``Encoder.from_pretrained`` (a built-in name, a package directory, a Hugging Face Hub id) and
embeds glycans, protein sequences or structure files to NumPy arrays (``torch.from_numpy``
makes tensors; torch is never needed). ``Glycan`` is a glycan's true all-atom molecule,
``read_structure`` a PDB/mmCIF file. Errors are ``AllatomError`` subclasses.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from ._native import (  # noqa: F401  (re-exported)
    DEFAULT_MODEL,
    MOLECULE_MODEL,
    AllatomError,
    Encoder,
    Glycan,
    GlycanParseError,
    ModelError,
    Structure,
    StructureError,
    __version__,
    read_structure,
)

__all__ = [
    "DEFAULT_MODEL",
    "MOLECULE_MODEL",
    "AllatomError",
    "Embeddings",
    "Encoder",
    "Glycan",
    "GlycanParseError",
    "InputWarning",
    "ModelError",
    "Structure",
    "StructureError",
    "read_structure",
]


class InputWarning(UserWarning):
    """Some inputs of a list could not be embedded (their graph-level rows are NaN)."""


@dataclass
class Embeddings:
    """Unit- or atom-level rows of a list of inputs.

    ``values`` is ``[rows, dim]`` float32; the rows of input ``i`` are
    ``values[offsets[i]:offsets[i + 1]]`` (empty when it failed, see ``errors[i]``).
    ``input_index`` / ``unit_index`` give each row's input and unit; atom level adds
    ``atom_index`` (the atom in the input's graph) and ``atomic_number``. ``records`` are the
    per-input metadata lines ``allatom embed`` writes to its ``.jsonl`` (unit labels, atom
    counts, errors).
    """

    values: np.ndarray
    offsets: np.ndarray
    input_index: np.ndarray
    unit_index: np.ndarray
    errors: List[Optional[str]]
    records: List[str]
    level: str
    atom_index: Optional[np.ndarray] = None
    atomic_number: Optional[np.ndarray] = None
    _parsed: Optional[list] = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.errors)

    def __getitem__(self, i: int) -> np.ndarray:
        """The rows of input ``i``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"input {i} of {n}")
        i %= n
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    @property
    def metadata(self) -> list:
        """The records as dicts."""
        if self._parsed is None:
            self._parsed = [json.loads(r) for r in self.records]
        return self._parsed

    def __repr__(self) -> str:
        failed = sum(e is not None for e in self.errors)
        return (
            f"Embeddings(level={self.level!r}, inputs={len(self)}, rows={self.values.shape[0]}, "
            f"dim={self.values.shape[1]}, failed={failed})"
        )


def _reload(name, revision, cache_dir, local_files_only, threads):
    """Loads an encoder again (what a pickled ``Encoder`` unpickles to)."""
    return Encoder.from_pretrained(
        name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, threads=threads
    )


# Warnings about failed inputs show every time, not once per call site.
warnings.simplefilter("always", InputWarning)
