"""The compiled-network cache: keys, reuse, locking between processes, damaged entries, stale networks."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from neuroplast.network import cache
from tests.helpers import ROOT, make_input, make_params, make_weights


@pytest.fixture
def cache_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NEUROPLAST_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_key_is_stable_and_sees_every_part() -> None:
    parts = {"sizes": [3, 4], "edges": {"input": (np.arange(5), np.arange(5)[::-1])}, "loss": "mse"}
    assert cache.cache_key(parts) == cache.cache_key({k: parts[k] for k in reversed(list(parts))})
    changed = {**parts, "edges": {"input": (np.arange(5), np.array([4, 3, 2, 0, 1]))}}
    assert cache.cache_key(changed) != cache.cache_key(parts)
    assert cache.cache_key({**parts, "loss": "cross_entropy"}) != cache.cache_key(parts)
    assert cache.cache_key({**parts, "sizes": [3, 5]}) != cache.cache_key(parts)


def test_build_is_reused_and_incomplete_entries_rebuilt(cache_root) -> None:
    folder = cache.standalone_root() / "k"
    calls = []

    def build(f: Path) -> None:
        calls.append(f)
        f.mkdir(parents=True, exist_ok=True)
        if not (f / "main").exists():  # as make: nothing changed, nothing linked
            (f / "main").write_text("binary")

    assert cache.build_cached(folder, build) is False  # first build
    assert cache.build_cached(folder, build) is True  # reused
    (folder / cache.BUILT).unlink()  # a build that was killed before it finished
    with pytest.warns(RuntimeWarning, match="incomplete; rebuilding"):
        assert cache.build_cached(folder, build) is False
    assert len(calls) == 3 and cache.built(folder)


def test_a_build_that_links_again_is_not_called_reused(cache_root) -> None:
    """ "reused" is said only of a build that left the binary untouched: a build that compiled and linked
    again into a finished entry (the code Brian2 generated differed) is not a reuse."""
    folder = cache.standalone_root() / "k"

    def relink(f: Path) -> None:
        f.mkdir(parents=True, exist_ok=True)
        (f / "main").unlink(missing_ok=True)
        (f / "main").write_text("binary, linked again")

    assert cache.build_cached(folder, relink) is False
    assert cache.build_cached(folder, relink) is False


def test_failing_reused_build_is_rebuilt_once(cache_root) -> None:
    folder = cache.standalone_root() / "k"
    state = {"n": 0}

    def build(f: Path) -> None:
        state["n"] += 1
        f.mkdir(parents=True, exist_ok=True)
        if state["n"] == 2:
            raise RuntimeError("make: *** corrupt object file")

    cache.build_cached(folder, build)
    with pytest.warns(RuntimeWarning, match="damaged"):
        assert cache.build_cached(folder, build) is False
    assert state["n"] == 3 and cache.built(folder)
    with pytest.raises(RuntimeError):  # a fresh build that fails is an error, not retried
        cache.build_cached(
            cache.standalone_root() / "other", lambda f: (_ for _ in ()).throw(RuntimeError("x"))
        )


def _slow_build(folder: str, log: str) -> None:
    def build(f: Path) -> None:
        with open(log, "a") as fh:
            fh.write(f"start {os.getpid()}\n")
        time.sleep(0.5)
        f.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as fh:
            fh.write(f"end {os.getpid()}\n")

    cache.build_cached(Path(folder), build)


def test_concurrent_builds_of_one_key_do_not_overlap(cache_root, tmp_path) -> None:
    folder, log = cache.standalone_root() / "k", tmp_path / "log"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_slow_build, args=(str(folder), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = log.read_text().split()
    events = lines[0::2]
    assert events == ["start", "end"] * 3  # never two builds at once
    assert cache.built(folder)


def test_a_build_waits_for_running_trials_and_trials_run_side_by_side(cache_root, tmp_path) -> None:
    """A running trial holds a shared lock: another process's build (which rewrites the project's static
    arrays) starts only after it, while a second trial gets its shared lock at once."""
    folder, log = cache.standalone_root() / "k", tmp_path / "log"
    folder.mkdir(parents=True)
    ctx = mp.get_context("spawn")
    with cache.running(folder):
        with cache.running(folder):  # two trials at once (two open files: two shared locks)
            p = ctx.Process(target=_slow_build, args=(str(folder), str(log)))
            p.start()
            time.sleep(1.5)
            assert not log.exists()  # the build is waiting
    p.join(60)
    assert p.exitcode == 0 and log.read_text().split()[0::2] == ["start", "end"]


def test_info_and_clear(cache_root) -> None:
    cache.build_cached(
        cache.standalone_root() / "k", lambda f: (f.mkdir(parents=True), (f / "x").write_bytes(b"1" * 1000))
    )
    info = cache.cache_info()
    assert [e[0] for e in info["standalone"]] == ["k"] and info["standalone"][0][1] >= 1000
    assert cache.clear_cache() >= 1000
    assert cache.cache_info()["standalone"] == []


_CHILD = """
import sys, time, json
import numpy as np
sys.path[:0] = [{root!r}]
from tests.helpers import make_input, make_params, make_weights
from neuroplast.network.builder import Brian2Network
net = Brian2Network(make_params("mix"), make_weights(), 300, device="cpp_standalone", gradients=True)
res = net.run_trial(make_weights(), make_input(T=300), target=np.zeros((300, 2)))
print(json.dumps({{"hit": net.cache_hit, "dir": str(net.build_dir), "y": res.y.ravel().tolist()}}))
"""


@pytest.mark.brian2
@pytest.mark.slow
def test_second_process_reuses_the_compiled_network(cache_root) -> None:
    import json

    env = {**os.environ, "NEUROPLAST_CACHE": str(cache_root), "NEUROPLAST_RAM_DIR": str(cache_root / "ram")}
    (cache_root / "ram").mkdir(parents=True)
    out = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD.format(root=str(ROOT))],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert out[0]["hit"] is False and out[1]["hit"] is True
    assert out[0]["dir"] == out[1]["dir"]
    assert np.array_equal(out[0]["y"], out[1]["y"])  # same binary, same trial: identical readout
    assert [e[0] for e in cache.cache_info()["standalone"]] == [Path(out[0]["dir"]).name]
    assert not list(Path(out[0]["dir"]).glob("results_*"))  # per-process results folders are removed
    assert not list((cache_root / "ram").glob("*/results_*"))  # and the RAM folders they linked to


@pytest.mark.brian2
@pytest.mark.slow
def test_training_again_in_one_process_reuses_the_compiled_network(tmp_path, capsys, monkeypatch) -> None:
    """issue 28: ``run_training`` three times in one process (a sweep worker's points, ``npl.train`` again):
    Brian2 names code objects after the live ones, so a network built while the previous one was still in
    memory became a new project ("..._codeobject_1") and compiled again (41 s) while saying "reused".  Every
    later run builds nothing now: the same cache entry, its binary untouched, and the message says so."""
    import tomllib

    from neuroplast.config import parse_config
    from neuroplast.training.runner import run_training
    from neuroplast.training.trainer import Trainer
    from tests.helpers import TINY_TOML

    folders: list[Path] = []
    from_config = Trainer.from_config.__func__

    def recorded(cls, *args, **kwargs):
        trainer = from_config(cls, *args, **kwargs)
        folders.append(trainer.net.build_dir)
        return trainer

    monkeypatch.setattr(Trainer, "from_config", classmethod(recorded))
    text = TINY_TOML.replace('device = "runtime"', 'device = "cpp_standalone"')
    cfg = parse_config(tomllib.loads(text.replace("iterations = 40", "iterations = 1")))
    stamps = []
    for k in range(3):
        run_training(cfg, tmp_path / f"run{k}.h5", seed=k, progress=True)
        stamps.append(cache._stamp(folders[-1] / cache.BINARY))  # noqa: SLF001 - as the cache judges it
    ready = [line for line in capsys.readouterr().err.splitlines() if "network ready" in line]
    assert len(ready) == 3
    assert all("reused the compiled network" in line for line in ready[1:]), ready
    assert folders[0] == folders[1] == folders[2]  # no new project (no numbered names)
    assert stamps[0] is not None and stamps[0] == stamps[1] == stamps[2]  # nothing compiled or linked


@pytest.mark.brian2
@pytest.mark.slow
def test_two_standalone_networks_in_one_process_take_turns(cache_root) -> None:
    """Brian2 has one standalone project per process: a superseded network rebuilds itself (no compile)."""
    from neuroplast.network.builder import Brian2Network

    w, x = make_weights(), make_input(T=200)
    a = Brian2Network(make_params("mix"), w, 200, device="cpp_standalone")
    ya = a.run_trial(w, x).y.copy()
    b = Brian2Network(make_params("lif"), w, 200, device="cpp_standalone")
    yb = b.run_trial(w, x).y.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "damaged cache entry" warning
        ya2 = a.run_trial(w, x).y  # a was superseded by b
    assert a.cache_hit is True
    assert np.array_equal(ya, ya2)
    assert not np.array_equal(ya, yb)  # the two networks differ (β), so the comparison can fail

    # A launch's inputs and weights go to this process's results folder: new values leave no file behind
    # in the shared project (Brian2's own run_args files, one per content hash, piled up there).
    def project_files() -> set:
        return {
            p
            for p in a.build_dir.rglob("*")
            if not p.relative_to(a.build_dir).parts[0].startswith("results_")
        }

    before = project_files()
    y_other = a.run_trial(make_weights(seed=5), make_input(seed=11, T=200)).y
    assert not np.array_equal(y_other, ya)
    assert project_files() == before


def test_damaged_cython_modules_are_removed_unless_being_compiled(cache_root) -> None:
    """A killed compile leaves an empty or cut-off module in the Cython cache, which Brian2 would fail to
    load: those go, with one warning; whole modules, and a damaged one
    whose lock another process holds (being compiled), stay."""
    import fcntl
    from importlib.machinery import EXTENSION_SUFFIXES

    real = next(Path(np.__file__).parent.rglob("*" + EXTENSION_SUFFIXES[0]))  # a whole extension module
    folder = cache_root / "cython"
    folder.mkdir(parents=True)
    whole = real.read_bytes()
    suffix = real.name.split(".", 1)[1]
    files = {name: folder / f"_cython_magic_{name}.{suffix}" for name in ("whole", "empty", "cut", "busy")}
    files["whole"].write_bytes(whole)
    files["empty"].write_bytes(b"")
    files["cut"].write_bytes(whole[: len(whole) // 2])
    files["busy"].write_bytes(b"")
    (folder / "_cython_magic_whole.lock").write_text("")  # Brian2's lock files: left as they are
    with open(folder / "_cython_magic_busy.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process compiles it (flock locks are per open file)
        with pytest.warns(RuntimeWarning, match=r"removed 2 damaged compiled module\(s\)"):
            removed = cache.repair_cython_cache()
    assert sorted(removed) == sorted([files["empty"], files["cut"]])
    assert files["whole"].read_bytes() == whole and files["busy"].exists()
    assert (folder / "_cython_magic_whole.lock").exists()
    with pytest.warns(RuntimeWarning, match=r"removed 1 damaged"):  # the busy one, its lock now free
        assert cache.repair_cython_cache() == [files["busy"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # nothing left to repair: no warning
        assert cache.repair_cython_cache() == []


def test_results_folders_live_in_the_ram_folder_and_orphans_go(tmp_path, monkeypatch) -> None:
    """A results folder is a link into the RAM folder; removing it removes both; a dead process's folder is
    removed by the next one made (not a live process's); no RAM folder (unset, too small): a plain folder."""
    ram, project = tmp_path / "ram", tmp_path / "project"
    ram.mkdir()
    project.mkdir()
    monkeypatch.setenv("NEUROPLAST_RAM_DIR", str(ram))
    mine = ram / f"neuroplast-{os.getuid()}"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    mine.mkdir()
    (mine / f"results_{int(dead.stdout)}_00000000").mkdir()  # left by a killed process
    (mine / f"results_{os.getppid()}_00000000").mkdir()  # a live process's
    name = cache.results_subdir(project)
    link = project / name
    assert link.is_symlink() and Path(os.path.realpath(link)) == mine / name
    (link / "x.dat").write_bytes(b"1")
    assert (mine / name / "x.dat").read_bytes() == b"1"
    assert sorted(p.name for p in mine.iterdir()) == sorted([name, f"results_{os.getppid()}_00000000"])
    cache._remove_results(link)
    assert not link.exists() and not link.is_symlink() and not (mine / name).exists()
    # an orphan link in the project folder goes with its RAM folder
    orphan = mine / f"results_{int(dead.stdout)}_11111111"
    orphan.mkdir()
    (project / orphan.name).symlink_to(orphan, target_is_directory=True)
    cache._remove_orphan_results(project)
    assert not orphan.exists() and not (project / orphan.name).is_symlink()
    for value, patch in (("", False), (str(ram), True)):
        monkeypatch.setenv("NEUROPLAST_RAM_DIR", value)
        if patch:  # a RAM file system without room
            monkeypatch.setattr(cache, "RAM_DIR_MIN_FREE", 2**62)
        assert cache.ram_dir() is None
        plain = project / cache.results_subdir(project)
        plain.mkdir()  # Brian2 makes it at the first launch
        assert not plain.is_symlink()
        cache._remove_results(plain)
        assert not plain.exists()
