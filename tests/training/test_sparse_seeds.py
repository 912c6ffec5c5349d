"""issue 24: runs of a sparse network that differ only in the seed — only in the drawn connectivity — run one
compiled network (cpp_standalone reads the synapses at launch, neuroplast/network/edges.py, and sizes the
monitors of every synapse then, neuroplast/network/records.py), and each run's log is, bit for bit, the log
of the same seed on a fresh build of its own connectivity."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from neuroplast.build import build
from neuroplast.config import parse_config
from neuroplast.io.diff import diff_files
from neuroplast.network import cache
from tests.helpers import TINY_TOML

#: TINY_TOML sparse (input and recurrent connections drawn from the seed) on cpp_standalone, 2 iterations.
SPARSE = (
    TINY_TOML.replace('device = "runtime"', 'device = "cpp_standalone"')
    .replace("n_rec = 30\n", "n_rec = 30\np_in = 0.5\np_rec = 0.2\n")
    .replace("iterations = 40", "iterations = 2")
)
#: The two engines of a batch: its trials side by side in one launch (batch 2), and one trial per iteration
#: with several iterations per launch (batch 1: the chunked engine, whose monitors record every synapse).
ENGINES = {"side-by-side": "batch_size = 2", "chunked": "batch_size = 1"}


def _config(engine: str):
    text = SPARSE.replace("batch_size = 2", ENGINES[engine])
    assert text != TINY_TOML and "p_rec = 0.2" in text
    return parse_config(tomllib.loads(text))


def _train(cfg, out: Path, seed: int, monkeypatch, cache_root: Path, nets: list) -> Path:
    """``run_training`` of ``seed``, compiled networks cached in ``cache_root``; its network into ``nets``."""
    from neuroplast.training.runner import run_training
    from neuroplast.training.trainer import Trainer

    from_config = Trainer.from_config.__func__

    def recorded(cls, *args, **kwargs):
        trainer = from_config(cls, *args, **kwargs)
        nets.append(trainer.net)
        return trainer

    monkeypatch.setenv("NEUROPLAST_CACHE", str(cache_root))
    with monkeypatch.context() as m:
        m.setattr(Trainer, "from_config", classmethod(recorded))
        return run_training(cfg, out, seed=seed, progress=False)


@pytest.mark.brian2
@pytest.mark.slow
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_new_seed_of_a_sparse_network_reuses_the_compiled_network(engine, tmp_path, monkeypatch) -> None:
    cfg = _config(engine)
    masks = [build(cfg, seed=s).weights for s in (0, 1)]
    # the seeds draw other connections, and another number of them: neither the edges nor their count may
    # be in the compiled program
    assert not np.array_equal(masks[0].mask_rec, masks[1].mask_rec)
    assert masks[0].mask_rec.sum() != masks[1].mask_rec.sum()
    assert masks[0].mask_in.sum() != masks[1].mask_in.sum()

    shared, fresh, nets = tmp_path / "shared", tmp_path / "fresh", []
    _train(cfg, tmp_path / "seed0.h5", 0, monkeypatch, shared, nets)
    stamp = cache._stamp(nets[0].build_dir / cache.BINARY)  # noqa: SLF001 - as the cache judges it
    second = _train(cfg, tmp_path / "seed1.h5", 1, monkeypatch, shared, nets)
    assert nets[0].cache_hit is False and nets[1].cache_hit is True  # the engine's own report
    assert nets[1].build_dir == nets[0].build_dir
    assert stamp is not None and cache._stamp(nets[1].build_dir / cache.BINARY) == stamp  # noqa: SLF001
    monkeypatch.setenv("NEUROPLAST_CACHE", str(shared))
    assert len(cache.cache_info()["standalone"]) == 1  # one entry for both seeds

    alone = _train(cfg, tmp_path / "alone1.h5", 1, monkeypatch, fresh, nets)
    assert nets[2].cache_hit is False  # a fresh build of seed 1's connectivity
    assert diff_files(second, alone) == []  # losses, weights, spikes, gradients: every byte
    assert diff_files(second, tmp_path / "seed0.h5") != []  # the comparison can fail
