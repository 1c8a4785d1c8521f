#!/usr/bin/env bash
# Runs every fuzz target (cargo-fuzz, libFuzzer) one at a time at the lowest
# CPU priority, then minimises each corpus back into fuzz/corpus/<target>/.
# The full run the security report asks for is
#
#   CPU_SECONDS_PER_TARGET=1800 bash fuzz/run.sh    # >= 30 CPU-minutes each
#
#   bash fuzz/run.sh [TARGET...]                     # default: all targets
#
# A target runs in rounds of ROUND_SECONDS wall time (default 300) until its
# rounds have used CPU_SECONDS_PER_TARGET of CPU (user+sys of the fuzzer,
# measured by GNU time): at nice 19 on a shared machine wall time says
# little about how much fuzzing was done. Without CPU_SECONDS_PER_TARGET a
# target runs one round of SECONDS_PER_TARGET wall seconds (default 600).
# Every round appends a line to fuzz/logs/rounds.tsv (target, wall s, CPU s,
# executions, crash), so an interrupted run still leaves an honest count.
# Stop a run with kill, never by pausing it (SIGSTOP): libFuzzer counts the
# pause against the input it was running and reports a false timeout.
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# A crash stops that target's run: its input lands in fuzz/artifacts/<target>/;
# fix the decoder, then keep the input in fuzz/regressions/<target>/ (the
# stable test tests/fuzz_corpora.rs replays it from then on).
# One line per target goes to fuzz/logs/summary.tsv: target, wall s, CPU s,
# executions, cov, ft, corpus entries, crash (0/1). The corpora are
# minimised with `cargo fuzz cmin`; seeds are made by fuzz/seed.sh.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
secs=${SECONDS_PER_TARGET:-600}
cpu_budget=${CPU_SECONDS_PER_TARGET:-}
round=${ROUND_SECONDS:-300}
all=(pack_trailer blob index snapshot tree config credentials manifest policies wire_poll wire_reports wire_enroll)
[ $# -gt 0 ] && targets=("$@") || targets=("${all[@]}")
mkdir -p logs
[ -d seeds ] || bash seed.sh "$here/../target/debug/cadang"

# -O -a: optimised, with debug assertions and overflow checks (cargo fuzz
# turns them off with -O alone), so an arithmetic overflow on a number read
# from the input is a crash, not a silent wrap.
cargo +nightly fuzz build -O -a >logs/build.log 2>&1 || { tail -20 logs/build.log; exit 1; }
# One libFuzzer run of $2 wall seconds on target $1; sets r_wall, r_cpu,
# r_execs, r_crash. Starts from the committed corpus, the seeds and what
# earlier rounds of this run found (logs/new-<t>).
round_once() {
  local t=$1 limit=$2
  log=logs/$t.log
  /usr/bin/time -f "%e %U %S" -o "logs/$t.time" nice -n 19 \
    cargo +nightly fuzz run -O -a "$t" "logs/new-$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$limit" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1
  r_crash=$?; [ $r_crash -ne 0 ] && r_crash=1
  local w u sy
  # GNU time puts "Command exited with non-zero status N" first on a crash.
  read -r w u sy < <(tail -n 1 "logs/$t.time")
  r_wall=$(python3 -c "print(round($w))")
  r_cpu=$(python3 -c "print(round($u+$sy))")
  r_execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  r_execs=${r_execs:-0}
}

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  log=logs/$t.log
  # A fresh directory collects what this run finds; corpus/ and seeds/ are
  # read as starting points. 256 MiB per allocation: a length read from the
  # input that sizes a buffer before it is checked shows up as a crash.
  rm -rf "logs/new-$t"; mkdir -p "logs/new-$t"
  wall=0; cpu=0; execs=0; crash=0
  while :; do
    if [ -n "$cpu_budget" ]; then
      [ "$cpu" -ge "$cpu_budget" ] && break
      this=$round
    else
      [ "$wall" -gt 0 ] && break
      this=$secs
    fi
    round_once "$t" "$this"
    wall=$((wall + r_wall)); cpu=$((cpu + r_cpu)); execs=$((execs + r_execs))
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$r_wall" "$r_cpu" "$r_execs" "$r_crash" >> logs/rounds.tsv
    [ "$r_crash" -ne 0 ] && { crash=1; break; }
  done
  last=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' | tail -1)
  cov=$(awk '{print $2}' <<<"$last"); ft=$(awk '{print $4}' <<<"$last"); corp=$(awk '{print $6}' <<<"$last")
  # Minimise what exists now (old corpus + new finds) into corpus/<t>.
  rm -rf "logs/min-$t"; mkdir -p "logs/min-$t"
  cp -n "logs/new-$t"/* "corpus/$t/" 2>/dev/null || true
  # Set cover over edges only (no hit counters): the smallest corpus that
  # keeps every covered edge, so the committed corpora stay small.
  nice -n 19 cargo +nightly fuzz cmin -O -a "$t" "corpus/$t" -- -set_cover_merge=1 -use_counters=0 \
    -rss_limit_mb=1024 -malloc_limit_mb=256 >"logs/cmin-$t.log" 2>&1 || true
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$wall" "$cpu" "$execs" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crash" | tee -a logs/summary.tsv
done
