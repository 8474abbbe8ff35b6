"""The Ray Data recipe (allatom.ray_data) on a local cluster of 2 CPUs: text file of glycans →
map_batches(EmbedActor) with 2 single-threaded actors (half a CPU each, leaving one for
the read and write tasks) → Parquet, and structure files by path.

Skipped, with the reason, when ray is not installed; `cargo xtask python-tests` installs
ray[data] 2.60 into its venv (about 20 s here), so it runs there.
"""

from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'ray[data]==2.60.0'")

import allatom  # noqa: E402
import allatom.ray_data as ard  # noqa: E402
from test_allatom import STRUCTURE, real_glycans  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_glycans_through_ray_data_to_parquet(cluster, tmp_path):
    glycans = real_glycans(200) + ["Gal(b1-4"]
    (tmp_path / "g.txt").write_text("\n".join(glycans) + "\n")
    ds = ray.data.read_text(str(tmp_path / "g.txt"))
    ard.embed_dataset(ds, concurrency=2, num_cpus=0.5, batch_size=64).write_parquet(str(tmp_path / "pq"))
    rows = ray.data.read_parquet(str(tmp_path / "pq")).take_all()
    assert sorted(r["text"] for r in rows) == sorted(glycans)
    enc = allatom.Encoder.from_pretrained()
    want = dict(zip(glycans[:-1], enc.embed(glycans[:-1])))
    for r in rows:
        if r["text"] == "Gal(b1-4":
            assert "at character" in r["error"] and np.isnan(r["embedding"]).all()
            continue
        assert r["error"] == "" and r["input"] == r["text"]
        # Another batching: the same rows to float rounding.
        np.testing.assert_allclose(r["embedding"], want[r["text"]], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not STRUCTURE.is_file(), reason="run `cargo xtask fetch-data` first")
def test_structure_files_by_path(cluster, tmp_path):
    ds = ray.data.from_items([{"path": str(STRUCTURE)}, {"path": str(tmp_path / "missing.pdb")}])
    rows = ard.embed_dataset(ds, column="path", num_cpus=0.5).take_all()
    enc = allatom.Encoder.from_pretrained()
    want, records = enc.embed([STRUCTURE], return_records=True)
    good = [r for r in rows if r["error"] == ""]
    assert [r["input"] for r in good] == [r["input"] for r in records]
    np.testing.assert_allclose(np.stack([r["embedding"] for r in good]), want, rtol=1e-5, atol=1e-5)
    bad = [r for r in rows if r["error"] != ""]
    assert len(bad) == 1 and bad[0]["path"].endswith("missing.pdb")
