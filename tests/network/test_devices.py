"""Brian2 preferences set by neuroplast.network.devices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_warnings_reach_the_user_after_brian2_is_configured() -> None:
    """Importing Brian2 routes Python warnings into its logger, which neuroplast turns down to errors: the
    configuration gives warnings back, so that e.g. "cache entry ... rebuilding it" is seen (in a fresh
    process: pytest records warnings itself)."""
    code = (
        "import warnings, brian2\n"
        "from neuroplast.network.devices import configure_brian2\n"
        "configure_brian2()\n"
        "warnings.warn('neuroplast: a warning for the user', RuntimeWarning)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "neuroplast: a warning for the user" in proc.stderr


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_brian2_without_pylab_leaves_pylab_importable() -> None:
    """``import_brian2(pylab=False)`` (the ``neuroplast`` command's import) brings brian2 without
    matplotlib.pyplot, and ``import pylab`` still works afterwards; the default import is brian2's own (with
    pylab's names: matplotlib is a dependency)."""
    code = (
        "import sys\n"
        "from neuroplast.network.devices import import_brian2\n"
        "import_brian2(pylab=False)\n"
        "import brian2\n"
        "assert 'matplotlib.pyplot' not in sys.modules and 'pylab' not in sys.modules, sorted(sys.modules)\n"
        "assert not hasattr(brian2, 'plot') and float(brian2.ms) == 1e-3 and brian2.exp(0.0) == 1.0\n"
        "import pylab\n"
        "assert hasattr(pylab, 'plot')\n"
        "import_brian2(pylab=True)  # imported already: nothing\n"
        "assert not hasattr(brian2, 'plot')\n"
        "print('ok')\n"
    )
    proc = _fresh(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    default = _fresh(
        "from neuroplast.network.devices import import_brian2\n"
        "import_brian2()\n"
        "import brian2\n"
        "print(hasattr(brian2, 'plot'))\n"
    )
    assert default.returncode == 0 and default.stdout.strip() == "True", default.stderr


def test_simulated_by_brian2_follows_the_device_registry() -> None:
    from neuroplast.devices import DEVICES, device_info
    from neuroplast.network.devices import BRIAN2_DEVICES, simulated_by_brian2

    assert simulated_by_brian2("auto") and simulated_by_brian2(" AUTO ")
    for name in DEVICES.names():
        assert simulated_by_brian2(name) == (name in BRIAN2_DEVICES and not device_info(name).simulator)
    assert any(not simulated_by_brian2(name) for name in DEVICES.names())  # nest-current: NEST's own
    assert not simulated_by_brian2("no-such-device")


def _network_cpp(maximum_run_time: float | None = None) -> str:
    from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject

    return CPPStandaloneCodeObject.templater.network(None, None, maximum_run_time=maximum_run_time).cpp_file


def _run_loop(source: str) -> str:
    """The body of ``Network::run``'s step loop."""
    start = source.index("while(clock && clock->running()")
    return source[start : source.index("Network::_globally_running = false;", start)]


#: A run loop as brian2 2.9 generates it (the end of ``Network::run`` in network.cpp): the CPU time read after
#: every step, for nothing but the duration reported at the end.
_LOOP_29 = """\
    start = std::clock();
    while(clock && clock->running() && !Network::_globally_stopped)
    {
        t = clock->t[0];
        for(size_t i=0; i<objects.size(); i++)
        {
            if (report_func)
            {
                current = std::clock();
            }
            func();
        }
        clock = next_clocks();

        current = std::clock();
        elapsed_realtime = (double)(current - start)/(1 * CLOCKS_PER_SEC);


    }
    Network::_globally_running = false;

    _last_run_time = elapsed_realtime;
"""
#: brian2 2.9's per-step read, as its template writes it.
_READ_29 = "clock = next_clocks();\n\n        current = std::clock();\n        elapsed_realtime = (double)"


def _moved_after_the_loop(source: str, moved: str) -> None:
    per_step = "elapsed_realtime = (double)(current - start)"
    assert per_step in _run_loop(source) and per_step not in _run_loop(moved)
    # the loop's one other read is the progress report's, only where a report function is given
    assert _run_loop(moved).count("std::clock()") == 1 and "if (report_func)" in _run_loop(moved)
    assert moved.count("std::clock()") == source.count("std::clock()")
    after = moved[moved.index("Network::_globally_running = false;", moved.index("while(clock")) :]
    assert after.index(per_step) < after.index("_last_run_time")
    assert sorted(moved.split()) == sorted(source.split())  # nothing but those two lines moved


def test_run_loop_reads_the_clock_once_per_run() -> None:
    """brian2 2.9's ``Network::run`` reads the CPU time after every step (a system call, ≈ 6 % of a
    100-neuron binary); neuroplast's device moves the read after the loop, where the run's duration is
    reported from it, and changes nothing else.  brian2 ≥ 2.10 reads it per step only with a progress report
    or a ``maximum_run_time``: its source is left as it is."""
    from neuroplast.network.engine import clock_once_per_run

    _moved_after_the_loop(_LOOP_29, clock_once_per_run(_LOOP_29))  # on every Brian2 of the matrix
    source = _network_cpp()
    if _READ_29 in _run_loop(source):  # brian2 2.9: its own template's read is moved
        _moved_after_the_loop(source, clock_once_per_run(source))
    else:  # brian2 >= 2.10: nothing to move
        assert clock_once_per_run(source) == source
    # a run with a maximum wall time compares the clock at every step: left as it is, as is any other source
    limited = _network_cpp(maximum_run_time=2.0)
    assert clock_once_per_run(limited) == limited
    assert clock_once_per_run("int main() { return 0; }\n") == "int main() { return 0; }\n"


def _network_files() -> tuple[str, str]:
    from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject

    net = CPPStandaloneCodeObject.templater.network(None, None, maximum_run_time=None)
    return net.cpp_file, net.h_file


def test_this_steps_clocks_are_a_vector_that_compiles(tmp_path) -> None:
    """The run loop's clocks of the step (``curclocks``) are a vector, in network.cpp and network.h alike,
    on this Brian2's own templates: filled from the set of all clocks, searched for each object, ticked —
    the source compiles (syntax-checked against Brian2's brianlib) and nothing else changed."""
    import shutil

    import brian2

    from neuroplast.network.engine import clock_once_per_run, current_clocks_in_a_vector

    cpp, h = _network_files()
    cpp = clock_once_per_run(cpp)
    new_cpp, new_h = current_clocks_in_a_vector(cpp, h)
    assert "curclocks.push_back(clock);" in new_cpp and "curclocks.insert" not in new_cpp
    assert "std::find(curclocks.begin(), curclocks.end(), obj_clock)" in new_cpp
    assert "std::set<" in new_h and "std::vector<" in new_h and "clocks, curclocks" not in new_h
    # the set of all clocks is still a set (next_clocks fills the vector from it, in its order)
    assert new_cpp.count("std::set<") == cpp.count("std::set<") - 1
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is not None:  # a project's layout: network.*, brianlib/ with Brian2's stdint_compat.h
        (tmp_path / "network.h").write_text(new_h)
        (tmp_path / "network.cpp").write_text(new_cpp)
        package = Path(brian2.__file__).parent
        shutil.copytree(package / "devices" / "cpp_standalone" / "brianlib", tmp_path / "brianlib")
        shutil.copy(package / "synapses" / "stdint_compat.h", tmp_path / "brianlib")
        proc = subprocess.run(
            [cxx, "-fsyntax-only", "-std=c++11", f"-I{tmp_path}", str(tmp_path / "network.cpp")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    # a source that differs from what is replaced: both files as they are (never one without the other)
    other = cpp.replace("curclocks.insert(clock);", "curclocks.insert(*i);")
    assert current_clocks_in_a_vector(other, h) == (other, h)
    assert current_clocks_in_a_vector(cpp, h.replace("clocks, curclocks", "curclocks, clocks")) == (
        cpp,
        h.replace("clocks, curclocks", "curclocks, clocks"),
    )


def _array_write(name: str) -> str:
    """One dynamic array's write after the run, as Brian2's objects.cpp template (2.9–2.11) generates it."""
    return f"""    ofstream outfile_{name};
    outfile_{name}.open(results_dir + "{name}_1", ios::binary | ios::out);
    if(outfile_{name}.is_open())
    {{
        if (! {name}.empty() )
        {{
            outfile_{name}.write(reinterpret_cast<char*>(&{name}[0]), 8);
            outfile_{name}.close();
        }}
    }} else
    {{
        std::cout << "Error writing output file for {name}." << endl;
    }}
"""


#: Two arrays' writes after the run, as generated.
_HEAD = "void _write_arrays()\n{\n    using namespace brian;\n\n"
_WRITES = _HEAD + _array_write("_dynamic_array_syn_w") + _array_write("_dynamic_array_syn_g") + "}\n"


def test_arrays_nothing_reads_back_are_not_written() -> None:
    """The device leaves out the writes of the arrays it was told nobody reads back, each block whole, and
    nothing else; a name whose block it does not find (another template, or none) keeps its write."""
    from neuroplast.network.engine import without_array_writes

    out, removed = without_array_writes(_WRITES, ["_dynamic_array_syn_w", "_dynamic_array_syn_x"])
    assert removed == {"_dynamic_array_syn_w"}
    assert "syn_w" not in out and out.count("ofstream ") == 1
    assert out == _HEAD + _array_write("_dynamic_array_syn_g") + "}\n"
    assert without_array_writes(_WRITES, []) == (_WRITES, set())
    # a block that ends otherwise (another Brian2's template): left as it is, the launch only writes more
    other = _WRITES.replace("Error writing output file for _dynamic_array_syn_w.", "Cannot write syn_w.")
    assert without_array_writes(other, ["_dynamic_array_syn_w"]) == (other, set())


def test_launch_files_are_written_into_their_own_pages(tmp_path, monkeypatch) -> None:
    """A launch's file takes exactly the new bytes (C order, the array's dtype), written over the file's
    own bytes where it exists — never opened truncated, cut only where the new content is shorter (a
    truncate frees the cached pages that the write then allocates again) — or grown to the new length."""
    import os

    import numpy as np

    from neuroplast.network import engine

    opened, cut = [], []
    real_open, real_truncate = os.open, os.ftruncate

    def open_(p, flags, *a):
        opened.append(flags)
        return real_open(p, flags, *a)

    def truncate(fd, n):
        cut.append(n)
        return real_truncate(fd, n)

    monkeypatch.setattr(engine.os, "open", open_)
    monkeypatch.setattr(engine.os, "ftruncate", truncate)
    path = tmp_path / "arg_w.dat"
    rng = np.random.default_rng(3)
    first = rng.standard_normal(1000)
    engine.write_in_place(path, first)
    assert path.read_bytes() == first.tobytes()
    second = rng.standard_normal(1000)
    engine.write_in_place(path, second)
    assert np.array_equal(np.fromfile(path), second)
    assert cut == [] and not any(flags & os.O_TRUNC for flags in opened) and len(opened) == 2
    shorter = rng.standard_normal(10)
    engine.write_in_place(path, shorter)
    assert cut == [shorter.nbytes] and np.array_equal(np.fromfile(path), shorter)
    table = (rng.random((7, 5)) < 0.5).astype(np.uint8)[:, ::-1]  # not contiguous: written in C order
    engine.write_in_place(path, table)
    assert path.read_bytes() == np.ascontiguousarray(table).tobytes()
    engine.write_in_place(path, np.zeros(0, dtype=np.int32))
    assert path.stat().st_size == 0
