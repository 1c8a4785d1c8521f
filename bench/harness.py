#!/usr/bin/env python3
"""cadang vs restic vs borg: the benchmark driver behind bench/run.sh (stdlib only).

    python3 bench/harness.py            # everything; writes bench/RESULTS.md
    python3 bench/harness.py --report   # rewrite RESULTS.md from bench/work/results/*.json

Environment: BENCH_SCALE (default 1), BENCH_VARIANT (sparse or dense,
default sparse), BENCH_TOOLS (default cadang,restic,borg),
BENCH_WORK (default bench/work), BENCH_RESULTS (default bench/RESULTS.md, or
bench/RESULTS-dense.md for the dense variant),
BENCH_TIMEOUT (seconds per phase, default 7200), CADANG_BIN (default
target/release/cadang), BENCH_KEEP_RESTORE=1 keeps the restored trees.
See bench/README.md for what each phase measures.
"""

import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import treesum  # noqa: E402

SCALE = float(os.environ.get("BENCH_SCALE", "1") or "1")
VARIANT = os.environ.get("BENCH_VARIANT", "") or "sparse"
if VARIANT not in ("sparse", "dense"):
    sys.exit(f"bench: unknown BENCH_VARIANT {VARIANT!r} (sparse or dense)")
TOOLS = [t.strip() for t in os.environ.get("BENCH_TOOLS", "cadang,restic,borg").split(",") if t.strip()]
WORK = os.path.realpath(os.environ.get("BENCH_WORK", os.path.join(BENCH, "work")))
RESULTS_MD = os.environ.get("BENCH_RESULTS") or os.path.join(
    BENCH, "RESULTS.md" if VARIANT == "sparse" else f"RESULTS-{VARIANT}.md")
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "7200"))
CADANG_BIN = os.environ.get("CADANG_BIN") or os.path.join(ROOT, "target", "release", "cadang")
GNU_TIME = "/usr/bin/time"
PASSPHRASE = "bench passphrase of the Wali Data"

# Each variant keeps its own generated dataset, so switching does not regenerate.
DATA = os.path.join(WORK, "data" if VARIANT == "sparse" else f"data-{VARIANT}")
CURRENT = os.path.join(WORK, "current")
RESDIR = os.path.join(WORK, "results")
LOGS = os.path.join(WORK, "logs")

MiB = 1024 * 1024


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)


def du_bytes(path, apparent=False):
    """Bytes on disk (du -sb counts apparent sizes; -B1 counts allocated blocks)."""
    if not os.path.exists(path):
        return None
    r = sh(["du", "-s", "-b" if apparent else "-B1", path])
    try:
        return int(r.stdout.split()[0])
    except (IndexError, ValueError):
        return None


def repo_bytes(path):
    """Repository size as the brief asks for it: `du -sb`."""
    return du_bytes(path, apparent=True)


def rmtree(path):
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


# ------------------------------------------------------------------ timing

def cpu_busy_seconds():
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(name, argv, env=None, cwd=None):
    """Runs argv under GNU time; returns wall (s), cpu (user+sys s), peak RSS (KiB), rc, stderr tail."""
    os.makedirs(LOGS, exist_ok=True)
    out_p, err_p, t_p = (os.path.join(LOGS, f"{name}.{x}") for x in ("out", "err", "time"))
    full_env = dict(os.environ)
    full_env.update(env or {})
    use_time = os.access(GNU_TIME, os.X_OK)
    cmd = ([GNU_TIME, "-f", "%e %U %S %M", "-o", t_p] if use_time else []) + list(argv)
    with open(os.path.join(LOGS, f"{name}.cmd"), "w") as f:
        f.write(" ".join(argv) + "\n")
    os.sync()  # earlier phases' dirty pages must not be flushed on this phase's clock
    busy0 = cpu_busy_seconds()
    t0 = time.perf_counter()
    with open(out_p, "wb") as fo, open(err_p, "wb") as fe:
        try:
            p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                 start_new_session=True)
        except OSError as e:
            return {"ok": False, "rc": None, "error": f"cannot start: {e}"}
        status, ru = _wait(p, t0)
        wall = time.perf_counter() - t0
    res = {"wall": wall, "cmd": " ".join(argv)}
    if status is None:
        res.update(ok=False, rc=None, error=f"timed out after {TIMEOUT:.0f}s")
        return res
    rc = os.waitstatus_to_exitcode(status)
    res["rc"] = rc
    cpu = rss = None
    if use_time and os.path.exists(t_p):
        lines = [l for l in open(t_p).read().splitlines() if re.match(r"^[\d.]+ [\d.]+ [\d.]+ \d+$", l)]
        if lines:
            e, u, s, m = lines[-1].split()
            cpu, rss = float(u) + float(s), int(m)
    if cpu is None and ru is not None:  # GNU time missing: rusage of the child tree
        cpu, rss = ru.ru_utime + ru.ru_stime, ru.ru_maxrss
    res.update(cpu=cpu, rss_kib=rss)
    # The machine is shared: what everything else ran meanwhile, as a share of
    # all cores (0.5 on two cores = one core busy with other work).
    busy1 = cpu_busy_seconds()
    if busy0 is not None and busy1 is not None and cpu is not None and wall > 0:
        others = max(0.0, busy1 - busy0 - cpu)
        res["others_share"] = min(1.0, others / (wall * (os.cpu_count() or 1)))
    res["ok"] = rc == 0
    res["stderr_tail"] = tail(err_p)
    res["stdout"] = open(out_p, errors="replace").read()[-20000:]
    return res


def _wait(p, t0):
    """Waits for p, keeping its rusage; kills its whole session after TIMEOUT. Returns (status, rusage)."""
    delay = 0.001
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > TIMEOUT:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.wait4(p.pid, 0)
            p.returncode = -9
            return None, None
        time.sleep(delay)
        delay = min(delay * 1.5, 0.02)
    p.returncode = os.waitstatus_to_exitcode(status)
    return status, ru


def tail(path, n=400):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4000))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    text = text.replace("\r", "\n")
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("Command exited with non-zero status")]
    return " / ".join(lines)[-n:]


# ------------------------------------------------------------------ tools

class Tool:
    name = "?"
    # exit codes that mean "done, with warnings" (files unreadable etc.)
    warn_rcs = ()

    def __init__(self):
        self.dir = os.path.join(WORK, self.name)
        self.repo = os.path.join(self.dir, "repo")
        self.cache = os.path.join(self.dir, "cache")

    def env(self):
        return {}

    def available(self):
        return shutil.which(self.exe) is not None

    def version(self):
        r = sh(self.version_cmd, env=dict(os.environ, **self.env()))
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "?"


class Restic(Tool):
    name = "restic"
    exe = "restic"
    version_cmd = ["restic", "version"]
    warn_rcs = (3,)

    def env(self):
        return {"RESTIC_PASSWORD": PASSPHRASE, "RESTIC_CACHE_DIR": self.cache, "RESTIC_PROGRESS_FPS": "0.016"}

    def init(self):
        return ["restic", "-r", self.repo, "init"]

    def backup(self, path, label):
        return ["restic", "-r", self.repo, "backup", "--host", "bench", "--tag", label, path]

    def restore(self, target):
        # restic 0.14 (Debian bookworm) has no --sparse; holes come back as written zeros.
        return ["restic", "-r", self.repo, "restore", "latest", "--target", target]

    def check(self):
        return ["restic", "-r", self.repo, "check", "--read-data"]

    def notes(self):
        r = sh(["restic", "-r", self.repo, "cat", "config"], env=dict(os.environ, **self.env()))
        try:
            v = json.loads(r.stdout).get("version")
            return f"repository format v{v}" + (" (zstd compression, mode auto)" if v and v >= 2 else " (no compression)")
        except ValueError:
            return ""


class Borg(Tool):
    name = "borg"
    exe = "borg"
    version_cmd = ["borg", "--version"]
    warn_rcs = (1,)

    def env(self):
        return {
            "BORG_PASSPHRASE": PASSPHRASE,
            "BORG_BASE_DIR": self.cache,
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def init(self):
        return ["borg", "init", "--encryption=repokey-blake2", self.repo]

    def backup(self, path, label):
        return ["borg", "create", "--compression", "zstd,3", f"{self.repo}::{label}", path]

    def restore(self, target):
        return ["borg", "extract", "--sparse", f"{self.repo}::day2"]  # run with cwd=target

    restore_needs_cwd = True

    def check(self):
        return ["borg", "check", "--verify-data", self.repo]

    def notes(self):
        return "encryption repokey-blake2, compression zstd,3, extract --sparse"


class Cadang(Tool):
    name = "cadang"
    warn_rcs = (3,)

    def __init__(self):
        super().__init__()
        self.exe = CADANG_BIN
        self.creds = os.path.join(self.dir, "agent.credentials")
        self.identity = os.path.join(self.dir, "restore-job.identity")
        self.version_cmd = [self.exe, "--version"]

    def available(self):
        return os.access(self.exe, os.X_OK)

    def env(self):
        return {"CADANG_PASSPHRASE": PASSPHRASE}

    def init(self):
        return [self.exe, "repo", "init", "--repo", self.repo, "--pd", "BENCH", "--agent-credentials", self.creds]

    def backup(self, path, label):
        return [self.exe, "backup", "--repo", self.repo, "--credentials", self.creds, "--cache-dir", self.cache,
                "--host", "bench", "--json", path]

    def after_init(self):
        # DESIGN.md: an approved restore job receives the PD's identity
        # sealed to the restoring agent; the custodian's scrypt unlock runs
        # at approval, not inside the restore. So the restore is measured
        # with --identity, and this unlock (2^18 scrypt) is timed on its own.
        return [self.exe, "repo", "export-identity", "--repo", self.repo, "--out", self.identity]

    def restore(self, target):
        return [self.exe, "restore", "--repo", self.repo, "latest", "--target", target, "--identity", self.identity]

    def restore_with_passphrase(self, target):
        # The same restore, unlocking with CADANG_PASSPHRASE (one scrypt per command).
        return [self.exe, "restore", "--repo", self.repo, "latest", "--target", target]

    def check(self):
        return [self.exe, "check", "--repo", self.repo, "--read-data"]

    def notes(self):
        r = sh([self.exe, "snapshots", "--repo", self.repo, "--json"], env=dict(os.environ, **self.env()))
        try:
            snaps = json.loads(r.stdout)
            return f"`snapshots --json` lists {len(snaps)} snapshot(s)"
        except ValueError:
            return f"`snapshots --json` did not print JSON (rc {r.returncode}): {tail_text(r.stderr or r.stdout)}"


def tail_text(s, n=300):
    s = re.sub(r"\s+", " ", s or "").strip()
    return s[-n:]


TOOL_CLASSES = {"cadang": Cadang, "restic": Restic, "borg": Borg}


# ------------------------------------------------------------------ dataset

def dataset_stamp():
    h = hashlib.sha256()
    for f in ("gen_dataset.py",):
        h.update(open(os.path.join(BENCH, f), "rb").read())
    import gen_dataset
    for f in sorted(os.listdir(gen_dataset.SEEDS_DIR)):
        if f.endswith(".txt"):
            h.update(f.encode() + open(os.path.join(gen_dataset.SEEDS_DIR, f), "rb").read())
    h.update(f"scale={SCALE!r}".encode())
    if VARIANT != "sparse":  # the sparse variant keeps its old stamp
        h.update(f"variant={VARIANT}".encode())
    return h.hexdigest()


def ensure_dataset():
    stamp = dataset_stamp()
    stamp_file = DATA + ".stamp"
    if os.path.isdir(DATA) and os.path.exists(stamp_file) and open(stamp_file).read().strip() == stamp:
        log(f"dataset: reusing {DATA} (stamp matches)")
    else:
        rmtree(DATA)
        rmtree(stamp_file)
        tmp = DATA + ".tmp"
        rmtree(tmp)
        log(f"dataset: generating at scale {SCALE} into {DATA}")
        t0 = time.time()
        r = subprocess.run([sys.executable, os.path.join(BENCH, "gen_dataset.py"), tmp, "--scale", repr(SCALE),
                            "--variant", VARIANT])
        if r.returncode != 0:
            sys.exit("bench: dataset generation failed")
        os.rename(tmp, DATA)
        with open(stamp_file, "w") as f:
            f.write(stamp + "\n")
        log(f"dataset: generated in {time.time() - t0:.0f}s")
    # Reference listings are made fresh each run (treesum.py or mutate_dataset.py may have changed).
    with open(os.path.join(WORK, "day1.sums"), "w") as f:
        f.write("\n".join(treesum.listing(DATA, mtimes=True)) + "\n")
    rmtree(os.path.join(WORK, "day2.sums"))
    return stamp


def composition(root):
    groups = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        top = rel.split(os.sep)[0] if rel != "." else "."
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            g = groups.setdefault(top, {"files": 0, "symlinks": 0, "apparent": 0, "allocated": 0})
            if os.path.islink(p):
                g["symlinks"] += 1
                continue
            g["files"] += 1
            g["apparent"] += st.st_size
            g["allocated"] += st.st_blocks * 512
        for d in dirnames:  # symlinks to directories show up here
            p = os.path.join(dirpath, d)
            if os.path.islink(p):
                groups.setdefault(top, {"files": 0, "symlinks": 0, "apparent": 0, "allocated": 0})["symlinks"] += 1
    return groups


def strip_mtimes(lines):
    """treesum lines with mtimes -> without (the mtime is the field before the path)."""
    out = []
    for l in lines:
        parts = l.split(" ", 5)
        # type mode size hash mtime path
        out.append(" ".join(parts[:4] + [parts[5]]) if len(parts) == 6 else l)
    return out


def compare(ref_lines, got_lines):
    """(identical content?, number of differing entries, sample, entries whose mtime differs)."""
    ref = {l.split(" ", 5)[5]: l for l in ref_lines if len(l.split(" ", 5)) == 6}
    got = {l.split(" ", 5)[5]: l for l in got_lines if len(l.split(" ", 5)) == 6}
    diffs = []
    mt = 0
    for path in sorted(set(ref) | set(got)):
        a, b = ref.get(path), got.get(path)
        if a is None:
            diffs.append(f"extra: {path}")
            continue
        if b is None:
            diffs.append(f"missing: {path}")
            continue
        pa, pb = a.split(" ", 5), b.split(" ", 5)
        if pa[:4] != pb[:4]:
            what = "content" if pa[0] == pb[0] == "f" and pa[2:4] != pb[2:4] else "type/mode/target"
            diffs.append(f"{what}: {path} ({' '.join(pa[:3])} vs {' '.join(pb[:3])})")
        elif pa[4] != pb[4] and pa[0] == "f":
            mt += 1
    return (not diffs, len(diffs), diffs[:8], mt)


# ------------------------------------------------------------------ phases

def fresh_current():
    rmtree(CURRENT)
    r = sh(["cp", "-a", "--sparse=always", DATA, CURRENT])
    if r.returncode != 0:
        sys.exit(f"bench: cp failed: {r.stderr}")
    os.sync()
    time.sleep(1.5)  # no file is "just modified" when the first backup starts


def mutate_current():
    r = subprocess.run([sys.executable, os.path.join(BENCH, "mutate_dataset.py"), CURRENT], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench: mutate failed: {r.stderr}")
    lines = treesum.listing(CURRENT, mtimes=True)
    ref_p = os.path.join(WORK, "day2.sums")
    if os.path.exists(ref_p):
        ref = open(ref_p).read().splitlines()
        if ref != lines:
            raise RuntimeError("day-2 data differs from the first tool's (mutate_dataset.py not deterministic?)")
    else:
        with open(ref_p, "w") as f:
            f.write("\n".join(lines) + "\n")
    os.sync()
    time.sleep(1.5)
    return r.stderr.strip()


def run_tool(tool):
    log(f"== {tool.name} ==")
    res = {"tool": tool.name, "phases": {}, "available": tool.available()}
    if not res["available"]:
        res["unavailable"] = os.environ.get(f"BENCH_{tool.name.upper()}_NOTE") or f"{tool.exe} not found"
        log(f"{tool.name}: not available ({tool.exe})")
        return res
    res["version"] = tool.version()
    rmtree(tool.dir)
    os.makedirs(tool.dir)
    env = tool.env()
    ph = res["phases"]

    def phase(key, argv, cwd=None):
        log(f"{tool.name}: {key}")
        r = timed(f"{tool.name}-{key}", argv, env=env, cwd=cwd)
        names = {tool.repo: "REPO", tool.cache: "CACHE", getattr(tool, "creds", None): "CREDS", CURRENT: "bench/work/current",
                 os.path.join(tool.dir, "restore"): "TARGET", tool.exe: tool.name}
        r["display"] = " ".join(names.get(a, a.replace(tool.repo, "REPO")) for a in argv)
        if not r["ok"] and r.get("rc") in tool.warn_rcs:
            r["ok"] = True
            r["warning"] = f"exit {r['rc']}: {r.get('stderr_tail', '')[-200:]}"
        ph[key] = r
        if not r["ok"]:
            log(f"{tool.name}: {key} FAILED (rc {r.get('rc')}): {r.get('error') or r.get('stderr_tail', '')[-300:]}")
        else:
            log(f"{tool.name}: {key} {r['wall']:.2f}s")
        return r

    fresh_current()
    if not phase("init", tool.init())["ok"]:
        return res
    res["repo_after_init"] = repo_bytes(tool.repo)
    if hasattr(tool, "after_init"):
        # Untimed preparation (cadang: the identity an approved restore job receives).
        prep = phase("after_init", tool.after_init())
        if not prep["ok"]:
            return res
    b1 = phase("backup1", tool.backup(CURRENT, "day1"))
    res["repo_after_backup1"] = repo_bytes(tool.repo)
    b2 = phase("backup2", tool.backup(CURRENT, "day1b"))
    res["repo_after_backup2"] = repo_bytes(tool.repo)
    try:
        res["mutation"] = mutate_current()
    except RuntimeError as e:
        ph["backup3"] = {"ok": False, "rc": None, "error": str(e)}
        log(f"{tool.name}: {e}")
        return res
    b3 = phase("backup3", tool.backup(CURRENT, "day2"))
    res["repo_after_backup3"] = repo_bytes(tool.repo)
    res["cache_bytes"] = du_bytes(tool.cache)
    for k, r in (("backup1", b1), ("backup2", b2), ("backup3", b3)):
        if tool.name == "cadang" and r["ok"]:
            out = r["stdout"].strip()
            try:
                r["summary"] = json.loads(out[out.index("{"):])
            except ValueError:
                r["summary_error"] = f"backup --json did not print one JSON object: {tail_text(out, 200)!r}"

    # Restore the latest snapshot into an empty directory and compare it with its source.
    target = os.path.join(tool.dir, "restore")
    rmtree(target)
    os.makedirs(target)
    rs = phase("restore", tool.restore(target), cwd=target if getattr(tool, "restore_needs_cwd", False) else None)
    if rs["ok"]:
        ref_name = "day2.sums" if b3["ok"] else "day1.sums"
        sub = os.path.join(target, CURRENT.lstrip("/"))
        if os.path.isdir(sub):
            got = treesum.listing(sub, mtimes=True)
            ref = open(os.path.join(WORK, ref_name)).read().splitlines()
            same, ndiff, sample, mt = compare(ref, got)
            rs["identical"] = same
            rs["differences"] = ndiff
            rs["diff_sample"] = sample
            rs["mtime_differs"] = mt
            rs["compared_with"] = ref_name.split(".")[0]
            rs["restored_allocated"] = du_bytes(sub)
            rs["restored_apparent"] = du_bytes(sub, apparent=True)
        else:
            rs["identical"] = False
            rs["differences"] = None
            found = sorted(os.listdir(target))[:5]
            rs["diff_sample"] = [f"{sub} not found in the restore target (top level: {found})"]
    if os.environ.get("BENCH_KEEP_RESTORE") != "1":
        rmtree(target)
    if rs["ok"] and hasattr(tool, "restore_with_passphrase"):
        # Not compared again: the same code path, plus the unlock.
        target2 = os.path.join(tool.dir, "restore-pass")
        rmtree(target2)
        os.makedirs(target2)
        phase("restore_passphrase", tool.restore_with_passphrase(target2))
        rmtree(target2)

    phase("check", tool.check())
    try:
        res["notes"] = tool.notes()
    except Exception as e:  # notes are decoration
        res["notes"] = f"(notes failed: {e})"
    return res


# ------------------------------------------------------------------ report

def machine():
    mem = "?"
    cpu = "?"
    try:
        for l in open("/proc/meminfo"):
            if l.startswith("MemTotal:"):
                mem = f"{int(l.split()[1]) / 1024 / 1024:.1f} GiB"
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fs = sh(["df", "-T", WORK]).stdout.splitlines()[-1].split()[1] if os.path.exists(WORK) else "?"
    return {"nproc": os.cpu_count(), "memory": mem, "kernel": platform.release(), "cpu": cpu, "fs": fs}


def fmt_s(x):
    return "–" if x is None else (f"{x:.2f} s" if x < 100 else f"{x:.0f} s")


def fmt_b(x):
    if x is None:
        return "–"
    for unit, d in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(x) >= d:
            return f"{x / d:.2f} {unit}"
    return f"{x} B"


def fmt_rate(nbytes, wall):
    return "–" if not wall or nbytes is None else f"{nbytes / wall / MiB:.1f} MiB/s"


def cell_fail(r):
    if r is None:
        return "skipped"
    if r.get("ok"):
        return None
    msg = r.get("error") or r.get("stderr_tail") or ""
    msg = re.sub(r"\s+", " ", msg).replace("|", "\\|")
    return f"failed (rc {r.get('rc')}): {msg[-220:]}"


def write_report(all_res, ds):
    mi = ds["machine"]
    src_apparent = ds["apparent"]
    lines = []
    w = lines.append
    w("# cadang benchmark results")
    w("")
    w(f"- date: {ds['date']}")
    w(f"- machine: {mi['nproc']} CPUs ({mi['cpu']}), {mi['memory']} memory, Linux {mi['kernel']}, work dir on {mi['fs']}")
    w(f"- scale: **{ds['scale']}**" + (" (full benchmark)" if ds["scale"] == 1 else " (reduced: a smoke run, not the reference figures)"))
    variant = ds.get("variant", "sparse")
    w(f"- dataset variant: **{variant}** — " + (
        "with the 2 GiB sparse VM image (`BENCH_VARIANT=dense` for the one without holes, in `RESULTS-dense.md`)"
        if variant == "sparse" else
        "no sparse image: 4x the small files and a 512 MiB dense VM image (`bench/README.md`); "
        "the sparse variant's figures are in `RESULTS.md`"))
    w(f"- dataset stamp: `{ds['stamp'][:16]}` (sha256 of gen_dataset.py, the seed texts, the scale and the variant)")
    w("- machine load from others (the machine is shared): " + load_summary(all_res))
    w("- tool versions:")
    for t in TOOLS:
        r = all_res.get(t, {})
        if r.get("available"):
            w(f"  - {t}: {r.get('version', '?')}" + (f" — {r['notes']}" if r.get("notes") else ""))
        else:
            w(f"  - {t}: **not available** ({r.get('unavailable', 'not run')})")
    w("")
    w("Page cache: every phase runs warm-cache — the dataset was just copied into `bench/work/current`, "
      "nothing is dropped from the page cache, and `sync` runs before each timed command. The conditions "
      "are the same for every tool; figures on a cold cache or a slower disk will differ.")
    w("")
    w("## Dataset")
    w("")
    w("| part | files | symlinks | apparent size | allocated |")
    w("|---|---:|---:|---:|---:|")
    labels = {"dokumen": "dokumen/ — small text, CSV, JSON files", "arsip": "arsip/ — duplicates of small files",
              "db": "db/ — SQL dump (INSERT rows)", "pindaian": "pindaian/ — incompressible scans (JPEG header + random)",
              "vm": "vm/ — sparse VM image" if variant == "sparse" else "vm/ — dense VM image (no holes)"}
    for k in sorted(ds["composition"]):
        g = ds["composition"][k]
        w(f"| {labels.get(k, k)} | {g['files']} | {g['symlinks']} | {fmt_b(g['apparent'])} | {fmt_b(g['allocated'])} |")
    w(f"| **total** | {sum(g['files'] for g in ds['composition'].values())} | "
      f"{sum(g['symlinks'] for g in ds['composition'].values())} | **{fmt_b(src_apparent)}** | {fmt_b(ds['allocated'])} |")
    w("")
    w(f"Day 2 (`mutate_dataset.py`, the same for every tool, checked by checksum listing): {ds.get('mutation', '?')}; "
      f"day-2 tree {fmt_b(ds.get('day2_apparent'))} apparent.")
    w("")
    w("Throughputs below are source apparent size (holes included) divided by wall time.")
    w("")

    def phase(t, k):
        return all_res.get(t, {}).get("phases", {}).get(k)

    def row(cells):
        w("| " + " | ".join(cells) + " |")

    avail = [t for t in TOOLS if all_res.get(t, {}).get("available")]

    def table(title, key, cols, extra=None):
        w(f"## {title}")
        w("")
        row(["tool"] + [c[0] for c in cols])
        row(["---"] + ["---:" for _ in cols])
        for t in TOOLS:
            r = all_res.get(t, {})
            if not r.get("available"):
                why = re.sub(r"\s+", " ", r.get("unavailable", "")).replace("|", "\\|")
                row([t] + [f"failed: {why}" if t == "cadang" else f"not available ({why})"] + ["" for _ in cols[1:]])
                continue
            p = phase(t, key)
            if p is None:
                init = phase(t, "init")
                why = cell_fail(init) if init and not init.get("ok") else "skipped"
                row([t, ("init " + why) if init and not init.get("ok") else why] + ["" for _ in cols[1:]])
                continue
            f = cell_fail(p)
            if f:
                row([t, f] + ["" for _ in cols[1:]])
                continue
            row([t] + [c[1](p, r) for c in cols])
        if extra:
            w("")
            w(extra)
        w("")

    table("Initial backup", "backup1", [
        ("wall", lambda p, r: fmt_s(p["wall"])),
        ("throughput", lambda p, r: fmt_rate(src_apparent, p["wall"])),
        ("user+sys CPU", lambda p, r: fmt_s(p.get("cpu"))),
        ("peak RSS", lambda p, r: fmt_b((p.get("rss_kib") or 0) * 1024) if p.get("rss_kib") else "–"),
        ("repository size (du -sb)", lambda p, r: fmt_b(r.get("repo_after_backup1"))),
        ("local cache after all backups", lambda p, r: fmt_b(r.get("cache_bytes"))),
    ])
    table("Unchanged re-backup", "backup2", [
        ("wall", lambda p, r: fmt_s(p["wall"])),
        ("user+sys CPU", lambda p, r: fmt_s(p.get("cpu"))),
        ("peak RSS", lambda p, r: fmt_b((p.get("rss_kib") or 0) * 1024)),
        ("bytes added", lambda p, r: fmt_b(delta(r, "repo_after_backup1", "repo_after_backup2"))),
    ])
    table("Next-day backup", "backup3", [
        ("wall", lambda p, r: fmt_s(p["wall"])),
        ("user+sys CPU", lambda p, r: fmt_s(p.get("cpu"))),
        ("peak RSS", lambda p, r: fmt_b((p.get("rss_kib") or 0) * 1024)),
        ("bytes added to the repository", lambda p, r: fmt_b(delta(r, "repo_after_backup2", "repo_after_backup3"))),
        ("repository size", lambda p, r: fmt_b(r.get("repo_after_backup3"))),
    ])
    table("Full restore of the latest snapshot", "restore", [
        ("wall", lambda p, r: fmt_s(p["wall"])),
        ("throughput", lambda p, r: fmt_rate(src_apparent if p.get("compared_with") != "day2" else ds.get("day2_apparent"), p["wall"])),
        ("user+sys CPU", lambda p, r: fmt_s(p.get("cpu"))),
        ("peak RSS", lambda p, r: fmt_b((p.get("rss_kib") or 0) * 1024)),
        ("byte-identical", lambda p, r: identical_cell(p)),
        ("restored allocated / apparent", lambda p, r: f"{fmt_b(p.get('restored_allocated'))} / {fmt_b(p.get('restored_apparent'))}"),
    ], extra="byte-identical: every path, type, permission, size, symlink target and file content of the restored tree "
             "matches the backed-up (day-2) tree (`treesum.py`; holes and written zeros hash alike). Differing file "
             "mtimes are counted separately." + (" restic 0.14 cannot restore holes (no `--sparse`), so its VM image comes back fully allocated."
                                                 if variant == "sparse" else " The dense variant has no holes: every tool writes every byte."))
    table("Full read-data check", "check", [
        ("wall", lambda p, r: fmt_s(p["wall"])),
        ("user+sys CPU", lambda p, r: fmt_s(p.get("cpu"))),
        ("peak RSS", lambda p, r: fmt_b((p.get("rss_kib") or 0) * 1024)),
        ("command", lambda p, r: "`" + p.get("display", "") + "`"),
    ])

    # Targets (cadang against restic).
    w("## Targets (cadang vs restic)")
    w("")
    row(["target", "cadang", "restic", "ratio", "goal", "result"])
    row(["---", "---:", "---:", "---:", "---", "---"])
    c, rr = all_res.get("cadang", {}), all_res.get("restic", {})

    def ph(r, k):
        p = r.get("phases", {}).get(k)
        return p if p and p.get("ok") else None

    def target(name, cv, rv, ratio_fn, goal, ok_fn, fmt, invalid=None):
        if cv is None or rv is None:
            why = "cadang failed or not run" if cv is None else "restic not available or failed"
            row([name, fmt(cv) if cv is not None else "–", fmt(rv) if rv is not None else "–", "–", goal, f"n/a ({why})"])
            return
        ratio = ratio_fn(cv, rv)
        verdict = "**pass**" if ok_fn(ratio) else "**FAIL**"
        if invalid:
            verdict = f"**FAIL** ({invalid})"
        row([name, fmt(cv), fmt(rv), f"{ratio:.2f}×", goal, verdict])

    def wall(r, k):
        p = ph(r, k)
        return p["wall"] if p else None

    def rss(r, keys):
        vals = [ph(r, k)["rss_kib"] * 1024 for k in keys if ph(r, k) and ph(r, k).get("rss_kib")]
        return max(vals) if len(vals) == len(keys) else None

    target("initial backup throughput", wall(c, "backup1"), wall(rr, "backup1"), lambda a, b: b / a,
           "≥ 2.5× restic's", lambda x: x >= 2.5, fmt_s)
    target("repository size after initial backup", c.get("repo_after_backup1") if ph(c, "backup1") else None,
           rr.get("repo_after_backup1") if ph(rr, "backup1") else None, lambda a, b: a / b,
           "≤ 1.02× restic's", lambda x: x <= 1.02, fmt_b)
    target("unchanged re-backup time", wall(c, "backup2"), wall(rr, "backup2"), lambda a, b: a / b,
           "≤ 0.5× restic's", lambda x: x <= 0.5, fmt_s)
    target("next-day bytes added", delta(c, "repo_after_backup2", "repo_after_backup3") if ph(c, "backup3") else None,
           delta(rr, "repo_after_backup2", "repo_after_backup3") if ph(rr, "backup3") else None,
           lambda a, b: a / b if b else float("inf"), "≤ restic's", lambda x: x <= 1.0, fmt_b)
    cr = ph(c, "restore")
    # The goal for data without holes is 2.5x; the sparse variant keeps its 3x.
    restore_goal = 3.0 if variant == "sparse" else 2.5
    target("full restore throughput", wall(c, "restore"), wall(rr, "restore"), lambda a, b: b / a,
           f"≥ {restore_goal:g}× restic's", lambda x: x >= restore_goal, fmt_s,
           invalid=None if not cr or cr.get("identical") else "cadang's restore is not byte-identical")
    target("peak RSS, backup (max of the 3 backups)", rss(c, ["backup1", "backup2", "backup3"]),
           rss(rr, ["backup1", "backup2", "backup3"]), lambda a, b: a / b, "≤ restic's", lambda x: x <= 1.0, fmt_b)
    target("peak RSS, restore", rss(c, ["restore"]), rss(rr, ["restore"]), lambda a, b: a / b,
           "≤ restic's", lambda x: x <= 1.0, fmt_b)
    all_backups = all(ph(c, k) for k in ("backup1", "backup2", "backup3"))
    target("`check --read-data` time", wall(c, "check") if all_backups else None, wall(rr, "check"),
           lambda a, b: a / b, "≤ restic's", lambda x: x <= 1.0, fmt_s)
    w("")
    w("Throughput ratios are restic's wall time over cadang's (same bytes). "
      + ("cadang's restore was byte-identical." if cr and cr.get("identical") else
         "**cadang's restore was not verified byte-identical — a throughput pass does not count until it is.**" if cr else ""))
    w("")

    # Diagnostics.
    w("## Notes")
    w("")
    for t in TOOLS:
        r = all_res.get(t, {})
        if not r.get("available"):
            continue
        rs = r.get("phases", {}).get("restore") or {}
        if rs.get("diff_sample"):
            w(f"- {t} restore differences ({rs.get('differences')}): " + "; ".join(f"`{d}`" for d in rs["diff_sample"]))
        if rs.get("mtime_differs"):
            w(f"- {t} restore: {rs['mtime_differs']} file(s) with a different mtime than the source")
        for k, p in r.get("phases", {}).items():
            if p.get("warning"):
                w(f"- {t} {k}: completed with warnings ({p['warning'][:200]})")
        if t == "cadang":
            ai = r.get("phases", {}).get("after_init") or {}
            if ai.get("ok"):
                w(f"- cadang restores with `--identity` (an approved restore job receives the identity sealed to it; "
                  f"DESIGN.md). The custodian's passphrase unlock that produces it (scrypt 2^18) was measured "
                  f"separately: {fmt_s(ai.get('wall'))} wall, peak RSS {fmt_b((ai.get('rss_kib') or 0) * 1024)}; a restore given the "
                  f"passphrase instead of `--identity` adds that once.")
            rp, rs0 = r.get("phases", {}).get("restore_passphrase") or {}, r.get("phases", {}).get("restore") or {}
            if rp.get("ok") and rs0.get("ok"):
                w(f"- cadang restore given the passphrase (`CADANG_PASSPHRASE`, no `--identity`): {fmt_s(rp.get('wall'))} wall, "
                  f"peak RSS {fmt_b((rp.get('rss_kib') or 0) * 1024)} — the restore above ({fmt_s(rs0.get('wall'))}) plus "
                  f"one unlock ({fmt_s(rp['wall'] - rs0['wall'])} more); the scrypt's 256 MiB is the peak RSS here.")
            elif rp:
                w(f"- cadang restore given the passphrase: {cell_fail(rp)}")
            for k in ("backup1", "backup2", "backup3"):
                p = r.get("phases", {}).get(k) or {}
                s = p.get("summary")
                if isinstance(s, dict):
                    w(f"- cadang {k} `--json` summary: files {s.get('files')}, bytes {fmt_b(s.get('bytes'))}, "
                      f"added {fmt_b(s.get('added_bytes'))}, new chunks {s.get('new_chunks')}, {s.get('duration_ms')} ms")
                elif p.get("summary_error"):
                    w(f"- cadang {k}: {p['summary_error']}")
    w(f"- logs of every command: `bench/work/logs/` (`<tool>-<phase>.{{cmd,out,err,time}}`)")
    w("")
    with open(RESULTS_MD, "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {RESULTS_MD}")


def load_summary(all_res):
    """Other processes' CPU during each tool's restore and initial backup, as a share of all cores."""
    parts = []
    for t in TOOLS:
        ph = all_res.get(t, {}).get("phases", {})
        shares = [f"{k} {ph[k]['others_share'] * 100:.0f} %" for k in ("backup1", "restore")
                  if ph.get(k, {}).get("others_share") is not None]
        if shares:
            parts.append(f"{t} " + ", ".join(shares))
    if not parts:
        return "not measured"
    return ("; ".join(parts) + " of both cores busy with other work while the phase ran "
            "(from /proc/stat minus the phase's own CPU; 0 % = quiet)")


def identical_cell(p):
    if p.get("identical"):
        return "yes" + (f" ({p['mtime_differs']} mtimes differ)" if p.get("mtime_differs") else "")
    if p.get("differences") is None:
        return "**no** (restored tree not found)"
    return f"**no** ({p['differences']} entries differ)"


def delta(r, a, b):
    if r.get(a) is None or r.get(b) is None:
        return None
    return r[b] - r[a]


# ------------------------------------------------------------------ main

def main():
    os.makedirs(RESDIR, exist_ok=True)
    ds_p = os.path.join(RESDIR, "dataset.json")
    if "--report" in sys.argv:
        ds = json.load(open(ds_p))
        TOOLS[:] = ds.get("tools", TOOLS)
        all_res = {t: json.load(open(os.path.join(RESDIR, f"{t}.json"))) for t in TOOLS
                   if os.path.exists(os.path.join(RESDIR, f"{t}.json"))}
        write_report(all_res, ds)
        return
    for t in TOOLS:
        if t not in TOOL_CLASSES:
            sys.exit(f"bench: unknown tool {t!r} in BENCH_TOOLS (known: {', '.join(TOOL_CLASSES)})")
    os.makedirs(WORK, exist_ok=True)
    rmtree(LOGS)
    rmtree(RESDIR)
    os.makedirs(RESDIR)
    stamp = ensure_dataset()
    comp = composition(DATA)
    ds = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "scale": SCALE, "variant": VARIANT, "stamp": stamp, "tools": TOOLS, "machine": machine(), "composition": comp,
        "apparent": sum(g["apparent"] for g in comp.values()),
        "allocated": sum(g["allocated"] for g in comp.values()),
    }
    all_res = {}
    for t in TOOLS:
        tool = TOOL_CLASSES[t]()
        r = run_tool(tool)
        all_res[t] = r
        if r.get("mutation"):
            ds["mutation"] = r["mutation"].replace("day 2: ", "")
        with open(os.path.join(RESDIR, f"{t}.json"), "w") as f:
            json.dump(r, f, indent=1)
    d2 = os.path.join(WORK, "day2.sums")
    if os.path.exists(d2):
        ds["day2_apparent"] = sum(int(l.split(" ")[2]) for l in open(d2) if l.startswith("f "))
    with open(ds_p, "w") as f:
        json.dump(ds, f, indent=1)
    rmtree(CURRENT)
    write_report(all_res, ds)


if __name__ == "__main__":
    main()
