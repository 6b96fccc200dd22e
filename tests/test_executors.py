"""Executors: the same study on local joblib, a Dask LocalCluster (2 processes) and a local Ray
instance gives the same artifacts; failed and killed units on a worker; a missing extra.

Artifacts are compared file by file (:func:`tests._small_study.artifact_differences`): arrays
and CSVs byte for byte, JSON and safetensors metadata value for value without the
provenance ``created`` time (the moment a file was written, the only field that differs).
The runs share one run-directory path (run, then moved aside), so the paths and the config
hash recorded in the artifacts are the same too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hedonic_neurons.errors import ConfigError
from hedonic_neurons.pipeline import from_dict, load_config, run_study
from hedonic_neurons.pipeline.cache import MARKER, StageCache
from hedonic_neurons.pipeline.executor import (
    DaskExecutor,
    LocalExecutor,
    UnitFailedError,
    open_executor,
    require_backend,
    run_units,
)
from tests._small_study import artifact_differences, make_tiny_bert, small_config

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ---------------------------------------------------------------------- unit functions shipped to workers
def write_value(value: int, out: Path) -> None:
    (out / "value.txt").write_text(str(value))


def fail_on_three(value: int, out: Path) -> None:
    (out / "value.txt").write_text("half")
    if value == 3:
        raise ZeroDivisionError(f"injected failure for value {value}")
    (out / "value.txt").write_text(str(value))


def die_once(value: int, flag: str, out: Path) -> None:
    """Write half a file, then kill the worker process the first time (``flag`` marks it)."""
    (out / "value.txt").write_text("half")
    if not os.path.exists(flag):
        Path(flag).write_text(str(os.getpid()))
        os._exit(1)
    (out / "value.txt").write_text(str(value))


def _jobs(cache: StageCache, fn, n: int, *extra) -> list:
    return [(cache.unit("toy", f"v{i}", {"i": i}), fn, (i, *extra)) for i in range(n)]


# ---------------------------------------------------------------------- the study on every backend
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The small study run locally into ``<root>/run``, then moved to ``<root>/local``."""
    root = tmp_path_factory.mktemp("exec")
    base = make_tiny_bert(root / "bert")
    cfg = from_dict(small_config(base, root / "run"))
    res = run_study(cfg, progress=False, report=False)
    assert res.executed and not res.reused
    shutil.move(root / "run", root / "local")
    return root, cfg


def _run_on(study, backend: str, **executor):
    root, cfg = study
    x = from_dict({**cfg.to_dict(), "executor": {"backend": backend, "n_workers": 2, **executor}}).executor
    t0 = time.perf_counter()
    res = run_study(cfg, progress=False, report=False, executor=x)
    wall = time.perf_counter() - t0
    shutil.move(root / "run", root / backend)
    return res, root / backend, wall


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_artifacts(study) -> None:
    root, _ = study
    res, run, _ = _run_on(study, "dask")
    assert artifact_differences(root / "local", run) == []
    # every unit ran again (fresh directory) and the model units ran on the workers
    timings = json.loads((run / "artifacts" / "timings.json").read_text())["units"]
    assert {t["stage"] for t in timings} >= {"model", "capture", "valuation", "partition", "ood", "tracking"}
    by_stage = {t["stage"]: t for t in timings}
    assert by_stage["capture"]["backend"] == "dask" and by_stage["ood"]["backend"] == "dask"
    workers = {t["worker"] for t in timings if t["backend"] == "dask"}
    assert len(workers) == 2, workers  # two worker processes took units
    assert all(t["wall_s"] >= 0 and t["peak_rss_gb"] > 0 for t in timings)
    assert len(res.executed) == len(timings)


@pytest.mark.slow
def test_ray_local_instance_gives_the_local_artifacts(study) -> None:
    """In a subprocess: importing Ray patches the standard library for the rest of the process
    (``inspect.isgenerator``), and the offline corpus of later tests must not see that."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'hedonic-neurons[ray]')")
    root, cfg = study
    code = textwrap.dedent(f"""
        from hedonic_neurons.pipeline import load_config, run_study
        cfg = load_config({str(root / "cfg.yaml")!r})
        res = run_study(cfg, progress=False, report=False)
        print("executed", len(res.executed))
    """)
    from_dict({**cfg.to_dict(), "executor": {"backend": "ray", "n_workers": 2}}).to_yaml(root / "cfg.yaml")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if proc.returncode != 0 and "UnitFailedError" not in proc.stderr and "Ray" in proc.stderr:
        pytest.skip(f"a local Ray instance could not start here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.move(root / "run", root / "ray")
    assert artifact_differences(root / "local", root / "ray") == []
    timings = json.loads((root / "ray" / "artifacts" / "timings.json").read_text())["units"]
    assert {t["backend"] for t in timings if t["stage"] in ("capture", "ood", "evaluation")} == {"ray"}


# ---------------------------------------------------------------------- failures on workers
def test_a_failing_unit_is_reported_with_its_key_and_a_rerun_resumes(tmp_path) -> None:
    cache = StageCache(tmp_path / "cache")
    jobs = _jobs(cache, fail_on_three, 5)
    with pytest.raises(UnitFailedError) as info:
        run_units(jobs, cache, executor=LocalExecutor(n_workers=2))
    bad = jobs[3][0]
    msg = str(info.value)
    assert f"unit toy:v3 (key {bad.key})" in msg and "ZeroDivisionError: injected failure for value 3" in msg
    assert "\n" not in msg  # one line; the traceback is in a file
    (failure,) = info.value.failures
    log = cache.root / ".failures" / f"toy-{bad.key}.txt"
    assert log.is_file() and "fail_on_three" in log.read_text() and "fail_on_three" in failure.traceback
    assert not bad.done and (bad.path / "value.txt").read_text() == "half"  # no marker: not trusted
    assert all(u.done for u, _, _ in jobs if u is not bad)
    # the re-run computes only the failed unit and replaces the half-written file
    again = run_units(_jobs(cache, write_value, 5), cache)
    assert [u.key for u in again] == [bad.key]
    assert (bad.path / "value.txt").read_text() == "3" and bad.done


def test_a_killed_process_leaves_no_trusted_file_and_is_recomputed(tmp_path) -> None:
    """A process dies mid-unit (os._exit): half a file, its lease, no marker; the next run
    takes over the dead owner's lease and recomputes the unit."""
    cache_root = tmp_path / "cache"
    code = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from hedonic_neurons.pipeline.cache import StageCache, execute_unit
        def die(out):
            (out / "value.txt").write_text("half")
            os._exit(3)
        cache = StageCache({str(cache_root)!r})
        execute_unit(cache.root, cache.unit("toy", "v0", {{"i": 0}}), die, ())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    cache = StageCache(cache_root)
    unit = cache.unit("toy", "v0", {"i": 0})
    assert (unit.path / "value.txt").read_text() == "half" and not unit.done
    assert list((cache_root / ".leases").glob("*.lock"))  # the dead process's lease is still there
    computed = run_units([(unit, write_value, (0,))], cache)
    assert [u.key for u in computed] == [unit.key] and unit.done
    assert (unit.path / "value.txt").read_text() == "0"
    assert not list((cache_root / ".leases").glob("*.lock"))


@pytest.mark.slow
def test_dask_worker_killed_mid_unit_is_retried_and_the_error_names_the_unit(tmp_path) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cache = StageCache(tmp_path / "cache")
    flag = str(tmp_path / "killed-once")
    ex = DaskExecutor(n_workers=2)
    try:
        # a worker dies in the middle of unit v1; the nanny restarts it, the scheduler retries
        # the unit, the retry takes over the dead worker's lease and writes the whole file
        jobs = _jobs(cache, die_once, 3, flag)
        run_units(jobs, cache, executor=ex)
        assert Path(flag).is_file()
        for i, (u, _, _) in enumerate(jobs):
            assert u.done and (u.path / "value.txt").read_text() == str(i)
        # a unit that raises on a worker: its key, the worker and the worker's traceback
        cache2 = StageCache(tmp_path / "cache2")
        with pytest.raises(UnitFailedError) as info:
            run_units(_jobs(cache2, fail_on_three, 4), cache2, executor=ex)
        (f,) = info.value.failures
        assert f.backend == "dask" and f.key in str(info.value) and "fail_on_three" in f.traceback
        assert f.worker.split(":")[1] != str(os.getpid())  # it ran in a worker process
    finally:
        ex.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


# ---------------------------------------------------------------------- missing extras, config, CLI
@pytest.mark.parametrize(("backend", "modules"), [("dask", ("dask.distributed", "distributed")), ("ray", ("ray",))])
def test_missing_extra_is_one_clear_error_before_any_work(backend, modules, tmp_path, monkeypatch) -> None:
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # import m -> ImportError
    with pytest.raises(ConfigError, match=rf"pip install 'hedonic-neurons\[{backend}\]'"):
        require_backend(backend)
    cfg = load_config("tiny", output_dir=str(tmp_path / "run"), **{"executor.backend": backend})
    with pytest.raises(ConfigError, match=rf"executor.backend: '{backend}' needs"):
        run_study(cfg, progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match=r"hedonic-neurons\[" + backend):
        open_executor(backend)


def test_executor_config_round_trips_and_is_validated(tmp_path) -> None:
    cfg = load_config("tiny", **{"executor.backend": "dask", "executor.address": "tcp://10.0.0.1:8786",
                                 "executor.resources.gpu_units": 1, "executor.n_workers": 4})
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    again = load_config(path)
    assert again == cfg and again.executor.resources.gpu_units == 1.0 and again.executor.n_workers == 4
    assert cfg.hash() == load_config("tiny").hash()  # execution does not change what is computed
    for key, value, pattern in [
        ("executor.backend", "spark", r"executor.backend: 'spark' is not allowed"),
        ("executor.address", "tcp://x:1", r"executor.address: 'tcp://x:1' given with backend 'local'"),
        ("executor.n_workers", 0, r"executor.n_workers: expected null, -1 or an integer >= 1, got 0"),
        ("executor.resources.gpu_units", -1, r"executor.resources.gpu_units: expected a number >= 0"),
    ]:
        with pytest.raises(ConfigError, match=pattern):
            load_config("tiny", **{key: value})
    with pytest.raises(ConfigError, match=r"not a Dask scheduler address"):
        load_config("tiny", **{"executor.backend": "dask", "executor.address": "localhost"})
    with pytest.raises(ConfigError, match=r"not a Ray address"):
        load_config("tiny", **{"executor.backend": "ray", "executor.address": "nowhere"})


def test_cli_executor_and_address_flags(tmp_path, capsys) -> None:
    from hedonic_neurons.cli.main import main

    rc = main(["run", "--config-name", "tiny", "--out", str(tmp_path / "r"), "--executor", "dask",
               "--address", "tcp://127.0.0.1:1", "--dry-run"])
    assert rc == 0 and "unit(s) to run" in capsys.readouterr().out
    rc = main(["run", "--config-name", "tiny", "--out", str(tmp_path / "r"), "--address", "tcp://x:1", "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "executor.address" in err and "backend 'local'" in err
    with pytest.raises(SystemExit):
        main(["run", "--config-name", "tiny", "--executor", "spark", "--dry-run"])


def test_local_pool_runs_units_in_worker_processes_with_timings(tmp_path) -> None:
    cache = StageCache(tmp_path / "cache")
    jobs = _jobs(cache, write_value, 4)
    done = run_units(jobs, cache, executor=LocalExecutor(n_workers=2))
    assert sorted(u.key for u in done) == sorted(u.key for u, _, _ in jobs)
    for i, (u, _, _) in enumerate(jobs):
        t = cache.timing(u)
        assert (u.path / "value.txt").read_text() == str(i) and (u.path / MARKER).is_file()
        assert t is not None and t["backend"] == "local" and t["peak_rss_gb"] > 0 and t["wall_s"] >= 0
        assert t["worker"].split(":")[1] != str(os.getpid())  # a joblib worker, not this process
    assert run_units(jobs, cache, executor=LocalExecutor(n_workers=2)) == []  # all cached
