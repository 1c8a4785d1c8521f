#!/usr/bin/env bash
# cadang vs restic vs borg, in one run: installs the peers, builds cadang,
# generates (or reuses) the dataset, runs every phase for every tool and
# writes bench/RESULTS.md (bench/RESULTS-dense.md with BENCH_VARIANT=dense).
# See bench/README.md.
#
#   bash bench/run.sh                                  # full run (~2 GiB dataset)
#   BENCH_VARIANT=dense bash bench/run.sh              # the dataset without holes
#   BENCH_SCALE=0.05 bash bench/run.sh                 # quick smoke run
#   BENCH_TOOLS=cadang,restic CADANG_BIN=... bash bench/run.sh
set -uo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
export BENCH_WORK="${BENCH_WORK:-$BENCH/work}"
export BENCH_TOOLS="${BENCH_TOOLS:-cadang,restic,borg}"
mkdir -p "$BENCH_WORK"

say() { echo "[bench] $*" >&2; }
wants() { [[ ",$BENCH_TOOLS," == *",$1,"* ]]; }

# ---- peers and GNU time from Debian's packages, when missing
APT_UPDATED=""
apt_install() {  # apt_install PACKAGE: 0 when installed
  local pkg="$1"
  if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not found: cannot install $pkg"
    return 1
  fi
  local SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      say "not root and no sudo: cannot install $pkg"
      return 1
    fi
  fi
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    $SUDO apt-get update -qq >"$BENCH_WORK/apt.log" 2>&1 || say "apt-get update failed (see $BENCH_WORK/apt.log)"
    APT_UPDATED=1
  fi
  say "apt-get install $pkg"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >>"$BENCH_WORK/apt.log" 2>&1
}

if [ ! -x /usr/bin/time ]; then
  apt_install time || say "GNU time not available: CPU and RSS come from the kernel's rusage instead"
fi
if wants restic && ! command -v restic >/dev/null 2>&1; then
  apt_install restic || export BENCH_RESTIC_NOTE="apt-get install restic failed: the peer was not available"
fi
if wants borg && ! command -v borg >/dev/null 2>&1; then
  apt_install borgbackup || export BENCH_BORG_NOTE="apt-get install borgbackup failed: the peer was not available"
fi

# ---- cadang
if wants cadang; then
  if [ -n "${CADANG_BIN:-}" ]; then
    say "using CADANG_BIN=$CADANG_BIN"
  else
    say "cargo build --release -p cadang"
    if (cd "$ROOT" && cargo build --release -p cadang) >"$BENCH_WORK/cadang-build.log" 2>&1; then
      export CADANG_BIN="$ROOT/target/release/cadang"
    else
      tail_msg="$(grep -E '^(error|warning: unused)' "$BENCH_WORK/cadang-build.log" | head -3 | tr '\n' ' ')"
      [ -n "$tail_msg" ] || tail_msg="$(tail -n 3 "$BENCH_WORK/cadang-build.log" | tr '\n' ' ')"
      say "cadang build failed: $tail_msg"
      export BENCH_CADANG_NOTE="build failed: ${tail_msg:0:300} (log: bench/work/cadang-build.log)"
      export CADANG_BIN="$BENCH_WORK/no-cadang-binary"
    fi
  fi
fi

exec python3 "$BENCH/harness.py" "$@"
