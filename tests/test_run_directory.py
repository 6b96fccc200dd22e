"""The run directory: locked, content-addressed and exact.

* one study at a time: ``run directory D is in use by pid P on host H since T``; a killed
  study's lock (dead pid, or no heartbeat) is taken over; a waiting study computes nothing twice;
* unit leases: two drivers on one cache compute every unit once;
* cache keys follow file contents (an edited data file, a changed model file), hashed once;
* after a rerun with fewer layers or baselines, old artifacts move to ``artifacts/.stale/``
  and the manifest and ``timings.json`` list exactly the current plan.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hedonic_neurons.pipeline import build_plan, from_dict, run_study
from hedonic_neurons.pipeline.cache import StageCache, move_aside_stale
from hedonic_neurons.pipeline.executor import LocalExecutor, run_units
from hedonic_neurons.pipeline.lock import LockHeld, RunLock, UnitLease
from tests._small_study import make_tiny_bert, small_config


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(path: Path, pid: int, host: str, age: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host, "time": "2026-01-01T00:00:00+00:00", "token": "old"}))
    if age:
        t = time.time() - age
        os.utime(path, (t, t))


# ---------------------------------------------------------------------- the run lock
def test_second_lock_refuses_with_owner_then_frees(tmp_path) -> None:
    with RunLock(tmp_path, timeout=60):
        rec = json.loads((tmp_path / ".lock").read_text())
        assert rec["pid"] == os.getpid() and rec["host"] == socket.gethostname()
        with pytest.raises(LockHeld) as info:
            RunLock(tmp_path, timeout=60).acquire()
        msg = str(info.value)
        assert msg.startswith(f"run directory {tmp_path} is in use by pid {os.getpid()} on host "
                              f"{socket.gethostname()} since {rec['time']}")
    assert not (tmp_path / ".lock").exists()
    RunLock(tmp_path).acquire().release()  # free again


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path) -> None:
    _write_lock(tmp_path / ".lock", _dead_pid(), socket.gethostname())
    lock = RunLock(tmp_path, timeout=600).acquire()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()
    # another host: judged by the heartbeat; a fresh one holds, an old one is stale
    _write_lock(tmp_path / ".lock", 1, "elsewhere.example")
    with pytest.raises(LockHeld, match=r"in use by pid 1 on host elsewhere\.example"):
        RunLock(tmp_path, timeout=600).acquire()
    _write_lock(tmp_path / ".lock", 1, "elsewhere.example", age=700)
    RunLock(tmp_path, timeout=600).acquire().release()


def test_heartbeat_keeps_a_long_held_lock_fresh(tmp_path) -> None:
    with RunLock(tmp_path, timeout=0.4):
        time.sleep(1.0)  # longer than the timeout: only the heartbeat keeps it alive
        with pytest.raises(LockHeld):
            RunLock(tmp_path, timeout=0.4).acquire()


def test_killed_study_lock_is_recovered_by_the_next_run_study(tmp_path) -> None:
    """A study killed with SIGKILL leaves its lock; the next ``run_study`` takes it over."""
    code = ("import os, sys\nfrom hedonic_neurons.pipeline.lock import RunLock\n"
            f"RunLock({str(tmp_path)!r}).acquire()\nos.kill(os.getpid(), 9)\n")
    proc = subprocess.run([sys.executable, "-c", code], timeout=120)
    assert proc.returncode == -9 and (tmp_path / ".lock").is_file()
    RunLock(tmp_path).acquire().release()


# ---------------------------------------------------------------------- unit leases
def _count(i: int, log: str, out: Path) -> None:
    with open(log, "a") as fh:  # one line per execution
        fh.write(f"{i}\n")
    time.sleep(0.05)
    (out / "v.txt").write_text(str(i))


def test_two_drivers_on_one_cache_compute_each_unit_once(tmp_path) -> None:
    log = str(tmp_path / "executions.log")
    n = 12
    results: dict[str, list] = {}

    def driver(name: str, order: list[int]) -> None:
        cache = StageCache(tmp_path / "cache")
        jobs = [(cache.unit("toy", f"v{i}", {"i": i}), _count, (i, log)) for i in order]
        run_units(jobs, cache, executor=LocalExecutor(1))
        results[name] = [cache.executed, cache.reused]

    a = threading.Thread(target=driver, args=("a", list(range(n))))
    b = threading.Thread(target=driver, args=("b", list(range(n))[::-1]))
    a.start()
    b.start()
    a.join()
    b.join()
    lines = Path(log).read_text().split()
    assert sorted(map(int, lines)) == list(range(n))  # every unit exactly once
    executed = results["a"][0] + results["b"][0]
    assert sorted(executed) == sorted(f"toy:v{i}" for i in range(n))
    assert not list((tmp_path / "cache" / ".leases").glob("*.lock"))


def test_a_live_lease_makes_a_second_worker_wait_then_reuse(tmp_path) -> None:
    cache = StageCache(tmp_path / "cache")
    unit = cache.unit("toy", "v0", {"i": 0})
    lease = UnitLease(cache.root, unit.stage, unit.key, timeout=60).acquire()
    log = str(tmp_path / "log")
    t = threading.Thread(target=lambda: run_units([(unit, _count, (0, log))], StageCache(tmp_path / "cache")))
    t.start()
    time.sleep(0.5)
    assert t.is_alive() and not Path(log).exists()  # waiting for the lease
    unit.path.mkdir(parents=True, exist_ok=True)  # the holder finishes the unit
    cache.finish(unit, seconds=0.0)
    lease.release()
    t.join(timeout=30)
    assert not t.is_alive() and not Path(log).exists()  # reused, not recomputed


# ---------------------------------------------------------------------- content addressing
def _files_config(tmp_path: Path, model: Path) -> dict:
    for name in ("train", "ood"):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"qid": i, "docid": i, "query": f"q{i}", "passage": f"p{i}", "relevance": 1}) + "\n"
                    for i in range(50)))
    cfg = small_config(model, tmp_path / "run")
    cfg["data"] = {"source": "files", "train": str(tmp_path / "train.jsonl"), "ood": str(tmp_path / "ood.jsonl"),
                   "n_train": 16, "n_val": 4, "n_capture": 8, "n_ood": 8}
    return cfg


def test_an_edited_data_file_or_model_changes_the_keys(tmp_path, monkeypatch) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    (model / "weights.bin").write_bytes(b"\0" * 1000)
    cfg = from_dict(_files_config(tmp_path, model))
    first = build_plan(cfg)
    assert first.data.params["contents"][str(tmp_path / "train.jsonl")]
    assert build_plan(cfg).data.key == first.data.key  # nothing changed: same keys
    # edit the training file in place, same path: the data unit and everything after it change
    with open(tmp_path / "train.jsonl", "a") as fh:
        fh.write(json.dumps({"qid": 99, "docid": 99, "query": "q", "passage": "p", "relevance": 0}) + "\n")
    edited = build_plan(cfg)
    assert edited.data.key != first.data.key and edited.model.key != first.model.key
    assert edited.capture.key != first.capture.key
    # a model weight file changes: the model unit changes
    (model / "weights.bin").write_bytes(b"\1" * 1000)
    assert build_plan(cfg).model.key != edited.model.key
    # rewriting the same bytes (new mtime) keeps the key
    again = build_plan(cfg)
    (tmp_path / "ood.jsonl").write_bytes((tmp_path / "ood.jsonl").read_bytes())
    assert build_plan(cfg).data.key == again.data.key


def test_file_hashes_are_recorded_once(tmp_path, monkeypatch) -> None:
    import hedonic_neurons.pipeline.cache as cache_mod

    calls: list[str] = []
    real = cache_mod.file_sha256
    monkeypatch.setattr(cache_mod, "file_sha256", lambda p: calls.append(str(p)) or real(p))
    big = tmp_path / "model"
    big.mkdir()
    for i in range(3):
        (big / f"shard{i}.bin").write_bytes(os.urandom(1 << 16))
    cache = StageCache(tmp_path / "cache")
    fp = cache.fingerprint(big)
    assert len(calls) == 3
    cache.save_fingerprints()
    again = StageCache(tmp_path / "cache")  # a later run: sizes and mtimes unchanged -> no rehash
    assert again.fingerprint(big) == fp and len(calls) == 3
    (big / "shard1.bin").write_bytes(os.urandom(1 << 16))
    assert again.fingerprint(big) != fp and len(calls) == 4  # only the changed file


# ---------------------------------------------------------------------- the study: lock, waiting, stale artifacts
@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("bert"))


@pytest.mark.slow
@pytest.mark.usefixtures("torch_one_thread")
def test_concurrent_studies_and_stale_artifacts(bert, tmp_path) -> None:
    run = tmp_path / "run"
    cfg = from_dict(small_config(bert, run, **{"discovery.baselines": ["random", "kmeans"]}))
    out: dict[str, object] = {}

    def study(name: str, wait: float) -> None:
        try:
            out[name] = run_study(cfg, progress=False, report=False, wait=wait)
        except Exception as exc:
            out[name] = exc

    first = threading.Thread(target=study, args=("first", 0.0))
    first.start()
    deadline = time.time() + 60
    while not (run / ".lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    study("refused", 0.0)  # a second study at once: refused with the owner
    assert isinstance(out["refused"], LockHeld), out["refused"]
    assert f"run directory {run} is in use by pid {os.getpid()}" in str(out["refused"])
    waiter = threading.Thread(target=study, args=("waiter", 600.0))  # a third one waits for the lock
    waiter.start()
    first.join()
    waiter.join()
    assert not isinstance(out["first"], Exception), out["first"]
    r1, r3 = out["first"], out["waiter"]
    assert r1.executed and list(r3.executed) == [] and set(r3.reused) == set(r1.executed)  # nothing twice

    art = run / "artifacts"
    manifest = json.loads((art / "manifest.json").read_text())
    assert "layer2/kmeans/seed0" in manifest["partitions"]
    # rerun with one layer and one baseline: the layer-2 and kmeans artifacts move aside
    smaller = cfg.replace(**{"discovery.layers": [1], "discovery.baselines": ["random"]})
    res = run_study(smaller, progress=False, report=False)
    assert not any(u.startswith(("data:", "model:")) for u in res.executed)  # capture covers the layers: redone
    manifest = json.loads((art / "manifest.json").read_text())
    files = {p.relative_to(art).as_posix() for p in art.rglob("*") if p.is_file() and ".stale" not in p.parts}
    listed = {Path(v).relative_to("artifacts").as_posix() for group in manifest.values() for v in group.values()}
    for sub in ("partitions/", "phi/", "records/", "transitions/"):
        assert {f for f in files if f.startswith(sub)} == {f for f in listed if f.startswith(sub)}, sub
    assert all("layer2" not in k for group in manifest.values() for k in group)
    assert not any("kmeans" in k for k in manifest["partitions"])
    stale = list((art / ".stale").glob("*"))
    assert len(stale) == 1
    moved = {p.relative_to(stale[0]).as_posix() for p in stale[0].rglob("*") if p.is_file()}
    assert "artifacts/partitions/layer2/hedonic_oca_topcover.seed0.json" in moved
    assert "artifacts/partitions/layer1/kmeans.seed0.json" in moved
    assert "artifacts/phi/layer2.oca.safetensors" in moved
    timings = json.loads((art / "timings.json").read_text())["units"]
    plan_units = {u.label for u in build_plan(smaller).units()}
    assert {t["unit"] for t in timings} == plan_units


def test_move_aside_stale_keeps_exactly_the_listed_files(tmp_path) -> None:
    for rel in ("artifacts/partitions/layer1/a.json", "artifacts/partitions/layer2/b.json",
                "artifacts/phi/layer2.oca.safetensors", "figures/sankey.x.seed0.png", "figures/sizes.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    keep = [tmp_path / "artifacts/partitions/layer1/a.json"]
    dest = move_aside_stale(tmp_path, keep, ("artifacts/partitions/**/*", "artifacts/phi/**/*", "figures/sankey.*"))
    assert dest is not None and dest.parent == tmp_path / "artifacts" / ".stale"
    assert (tmp_path / "artifacts/partitions/layer1/a.json").is_file()
    assert not (tmp_path / "artifacts/partitions/layer2").exists()  # emptied directory removed
    assert (tmp_path / "figures/sizes.png").is_file()  # not matched by a pattern: untouched
    assert (dest / "artifacts/partitions/layer2/b.json").read_text() == "artifacts/partitions/layer2/b.json"
    assert (dest / "figures/sankey.x.seed0.png").is_file()
    assert move_aside_stale(tmp_path, keep, ("artifacts/partitions/**/*",)) is None  # nothing left to move
