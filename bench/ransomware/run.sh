#!/bin/sh
# The ransomware early-warning simulation at full size (issue 10 targets):
# 60 ordinary days of a PD file server with bursts, then each of the three
# attacks, real backups every day. Deterministic: the same figures on every
# machine but the backup times.
#
#   bench/ransomware/run.sh            # 3000 files, 60 days
#   FILES=6000 DAYS=60 bench/ransomware/run.sh
#
# Writes bench/ransomware/last-run.md; bench/RESULTS-ransomware.md quotes it.
set -eu
cd "$(dirname "$0")/../.."
out="$PWD/bench/ransomware/last-run.md"
CADANG_RANSOMWARE_FILES="${FILES:-3000}" \
CADANG_RANSOMWARE_DAYS="${DAYS:-60}" \
CADANG_RANSOMWARE_OUT="$out" \
    cargo test -p cadang --test ransomware full_sixty_days_then_each_attack -- --ignored --nocapture
echo "figures in $out"
