"""Process helpers: pinning, /proc readings (RSS, CPU), the quiet-box wait, the load monitor,
and child processes that take a JSON config and write a JSON result."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
PY = sys.executable
BIN = Path(sys.executable).parent


def log(msg: str) -> None:
    """Progress goes to stderr; stdout carries the JSON result and the summary lines only."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- cores -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cores:
    """The receiver gets the last core to itself; everything else runs on the other cores
    (limits.md: receiver on core 1, load generator on core 0)."""

    receiver: tuple[int, ...]
    others: tuple[int, ...]

    @classmethod
    def plan(cls) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(tuple(cpus), tuple(cpus))
        return cls((cpus[-1],), tuple(cpus[:-1]))

    def describe(self) -> dict[str, Any]:
        return {"receiver": list(self.receiver), "service_load_and_databases": list(self.others)}


def pin_self(cpus: Iterable[int]) -> None:
    os.sched_setaffinity(0, set(cpus))


def spawn(
    args: Sequence[str],
    *,
    cpus: Iterable[int] | None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
    stdout: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a process pinned to ``cpus`` (set before exec, so every child inherits it)."""
    cpu_set = set(cpus) if cpus is not None else None

    def pin() -> None:
        if cpu_set:
            os.sched_setaffinity(0, cpu_set)

    out: Any = stdout
    fh = None
    if log_path is not None and stdout is None:
        fh = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        out = fh
    try:
        return subprocess.Popen(
            list(args),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=fh if fh is not None else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            preexec_fn=pin,
        )
    finally:
        if fh is not None:
            fh.close()


def stop(
    proc: subprocess.Popen[bytes] | None, timeout: float = 30.0, sig: int = signal.SIGTERM
) -> None:
    """Stop one process we started, by its pid: SIGTERM, then SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- /proc -----------------------------------------------------------------------------------


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) in kB, or {} if the process is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def rss_mb(pid: int) -> float | None:
    kb = status_kb(pid).get("VmRSS")
    return round(kb / 1024, 1) if kb is not None else None


def peak_rss_mb(pid: int) -> float | None:
    kb = status_kb(pid).get("VmHWM")
    return round(kb / 1024, 1) if kb is not None else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except OSError:
        return None
    # the command name is in parentheses and may contain spaces
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    f = _stat_fields(pid)
    if f is None:
        return 0.0
    ticks = int(f[11]) + int(f[12])  # utime, stime
    if children:
        ticks += int(f[13]) + int(f[14])  # cutime, cstime (reaped children)
    return ticks / CLK_TCK


def _ppids() -> dict[int, int]:
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(int(name))
            if f is not None:
                out[int(name)] = int(f[1])
    return out


def descendants(root: int) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _ppids().items():
        children.setdefault(ppid, []).append(pid)
    seen = {root}
    stack = [root]
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


def tree_cpu_seconds(root: int) -> float:
    """CPU time of ``root`` and every process below it, including its reaped children."""
    return sum(cpu_seconds(pid, children=pid == root) for pid in descendants(root))


def _busy_ticks() -> int:
    with open("/proc/stat") as fh:
        parts = fh.readline().split()[1:]
    v = [int(x) for x in parts]
    # user nice system idle iowait irq softirq steal (guest is already in user)
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def _our_ticks() -> int:
    """CPU ticks of this process tree, reaped children included: a child that ends between two
    samples moves its ticks into its parent's cutime/cstime, so the sum stays continuous."""
    total = 0
    for pid in descendants(os.getpid()):
        f = _stat_fields(pid)
        if f is not None:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total


def loadavg() -> list[float]:
    with open("/proc/loadavg") as fh:
        return [float(x) for x in fh.read().split()[:3]]


@dataclass
class LoadSample:
    t: float
    busy: int
    ours: int


def _sample() -> LoadSample:
    return LoadSample(time.monotonic(), _busy_ticks(), _our_ticks())


def other_load(a: LoadSample, b: LoadSample) -> float:
    """Cores used by processes that are not ours between two samples."""
    dt = max(b.t - a.t, 1e-6)
    return max(0.0, ((b.busy - a.busy) - (b.ours - a.ours)) / CLK_TCK / dt)


def wait_quiet(max_wait: float, threshold: float = 0.3) -> dict[str, Any]:
    """limits.md's rule: wait (at most ``max_wait`` s) until other work on the box uses less than
    ``threshold`` cores over a 1-second window."""
    start = time.monotonic()
    last = 0.0
    if max_wait <= 0:
        return {"waited_s": 0.0, "other_load_cores": None, "quiet": None}
    while True:
        a = _sample()
        time.sleep(1.0)
        last = other_load(a, _sample())
        waited = time.monotonic() - start
        if last < threshold or waited >= max_wait:
            return {
                "waited_s": round(waited, 1),
                "other_load_cores": round(last, 2),
                "quiet": last < threshold,
            }


@dataclass
class LoadMonitor:
    """Samples, once a second, how many cores other people's processes use during a run."""

    interval: float = 1.0
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _first: LoadSample | None = None
    _last: LoadSample | None = None

    def __enter__(self) -> LoadMonitor:
        self._first = self._last = _sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            s = _sample()
            assert self._last is not None
            self.samples.append(other_load(self._last, s))
            self._last = s

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        end = _sample()
        if self._first is not None:
            self.overall = other_load(self._first, end)

    def summary(self) -> dict[str, Any]:
        s = sorted(self.samples)
        return {
            "other_load_cores_mean": round(getattr(self, "overall", 0.0), 2),
            "other_load_cores_max_1s": round(s[-1], 2) if s else None,
            "loadavg_end": loadavg(),
        }


# -- JSON-in/JSON-out children ----------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if extra:
        env.update(extra)
    return env


def start_child(
    module: str, config: dict[str, Any], workdir: Path, name: str, cpus: Iterable[int] | None
) -> tuple[subprocess.Popen[bytes], Path]:
    cfg = workdir / f"{name}.config.json"
    out = workdir / f"{name}.result.json"
    cfg.write_text(json.dumps(config))
    with contextlib.suppress(FileNotFoundError):
        out.unlink()
    proc = spawn(
        [PY, "-m", module, str(cfg), str(out)],
        cpus=cpus,
        env=child_env(),
        cwd=workdir,
        log_path=workdir / f"{name}.log",
    )
    return proc, out


def finish_child(
    proc: subprocess.Popen[bytes], out: Path, workdir: Path, name: str, timeout: float
) -> dict[str, Any]:
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(proc, 5)
        raise RuntimeError(f"{name} did not finish within {timeout:.0f} s") from None
    if code != 0 or not out.exists():
        text = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name} failed (exit {code}):\n{text}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_child(
    module: str,
    config: dict[str, Any],
    workdir: Path,
    name: str,
    cpus: Iterable[int] | None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    proc, out = start_child(module, config, workdir, name, cpus)
    return finish_child(proc, out, workdir, name, timeout)


def child_main(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Entry point of a child module: ``python -m bench.X CONFIG.json RESULT.json``."""
    cfg = json.loads(Path(sys.argv[1]).read_text())
    result = fn(cfg)
    Path(sys.argv[2]).write_text(json.dumps(result))
