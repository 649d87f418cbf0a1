#!/usr/bin/env bash
# End-to-end backfill throughput: `moe2seg backfill` vs a plain Node.js script doing the same
# job (benches/node_backfill.js: zlib, readline, benches/node_map.js's mapping, fetch), both
# from MoEngage-like .json.gz export files (benches/make_exports.py) through gunzip, mapping and
# batching to a local Segment stand-in that answers 200 without parsing (benches/segment_sink.js),
# on one CPU and on two, side by side in the same run. Not run by CI; nothing here asserts a time.
#
#   benches/backfill.sh               # needs: python3, node (20+), taskset; cargo if BIN is missing
#   benches/backfill.sh --node-only   # the Node runs only (no Rust binary needed)
#
# Environment (all optional):
#   BIN=target/release/moe2seg   the binary measured; built with `cargo build --release --bin
#                                moe2seg` when missing
#   BENCH_DIR=/tmp/moe2seg-backfill-bench   where the exports go (BENCH_DIR/exports, made again
#                                only when FILES, EVENTS_PER_FILE, SEED or the generator change)
#   FILES=8 EVENTS_PER_FILE=25000 SEED=1   the exports' size
#   RUNS=3                       runs of each command; the table shows the median wall time
#
# Runs (each RUNS times, a fresh --checkpoint for each Rust run):
#   Rust, one CPU:   taskset -c 0 $BIN backfill --rate 100000 --concurrency 4 --checkpoint ... DIR
#   Rust, two CPUs:  the same on both CPUs
#   Node, one CPU:   taskset -c 0 node benches/node_backfill.js DIR --url ... --key bench-key
#   Node, two CPUs:  the same on both CPUs
# The sink is pinned to the second CPU, so a one-CPU run has the first to itself; in a two-CPU
# run the sink shares the second CPU with the process measured. Events/s counts the export lines
# (events read), the same figure for both. Wall time is the whole process, start-up included.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --node-only) NODE_ONLY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "backfill.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

BIN=${BIN:-target/release/moe2seg}
BENCH_DIR=${BENCH_DIR:-/tmp/moe2seg-backfill-bench}
FILES=${FILES:-8}
EVENTS_PER_FILE=${EVENTS_PER_FILE:-25000}
SEED=${SEED:-1}
RUNS=${RUNS:-3}
DIR="$BENCH_DIR/exports"
EVENTS=$((FILES * EVENTS_PER_FILE))

die() { echo "backfill.sh: $*" >&2; exit 1; }
command -v node >/dev/null || die "node is needed"
command -v python3 >/dev/null || die "python3 is needed"

# --- the binary
if [[ $NODE_ONLY == 0 ]]; then
  # Built only when BIN is the default path (a build would not make any other one).
  if [[ ! -x $BIN && $BIN == target/release/moe2seg ]]; then
    echo "== building $BIN"
    cargo build --release --quiet --bin moe2seg
  fi
  [[ -x $BIN ]] || die "$BIN is missing (set BIN, or --node-only)"
  "$BIN" backfill --help >/dev/null 2>&1 ||
    die "$BIN has no working 'backfill' subcommand (rebuild it, or --node-only)"
fi

# --- the CPUs: the first two this process may run on
read -r -a CPUS <<<"$(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
PIN_ONE=() PIN_TWO=() PIN_SINK=()
if command -v taskset >/dev/null; then
  PIN_ONE=(taskset -c "${CPUS[0]}")
  if ((${#CPUS[@]} >= 2)); then
    PIN_SINK=(taskset -c "${CPUS[1]}")
    # Exactly two CPUs: unpinned on a two-CPU machine, the first two on a bigger one.
    ((${#CPUS[@]} > 2)) && PIN_TWO=(taskset -c "${CPUS[0]},${CPUS[1]}")
  fi
else
  echo "(no taskset: the one-CPU runs are not pinned and show the whole machine)"
fi
TWO_CPUS=0
((${#CPUS[@]} >= 2)) && TWO_CPUS=1

# --- the exports
mkdir -p "$BENCH_DIR"
PARAMS="files=$FILES events_per_file=$EVENTS_PER_FILE seed=$SEED generator=$(
  cat benches/make_exports.py tests/fixtures/batch_100.json | cksum | cut -d' ' -f1)"
STAMP="$BENCH_DIR/exports.params"
if [[ -f $STAMP && $(cat "$STAMP") == "$PARAMS" && -d $DIR ]]; then
  echo "== exports: $DIR (already made: $PARAMS)"
else
  echo "== making exports in $DIR ($PARAMS)"
  rm -rf "$DIR" "$STAMP"
  python3 benches/make_exports.py "$DIR" --files "$FILES" --events-per-file "$EVENTS_PER_FILE" --seed "$SEED"
  echo "$PARAMS" >"$STAMP"
fi
echo "$(find "$DIR" -name '*.json.gz' | wc -l) files, $EVENTS events," \
  "$(find "$DIR" -name '*.json.gz' -printf '%s\n' | awk '{s += $1} END {print s}') bytes gzipped"

# --- the sink
TMP=$(mktemp -d)
SINK_PID=
cleanup() {
  [[ -n $SINK_PID ]] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
"${PIN_SINK[@]}" node benches/segment_sink.js "$TMP/port" >"$TMP/sink.out" &
SINK_PID=$!
for _ in $(seq 100); do [[ -s $TMP/port ]] && break; sleep 0.1; done
[[ -s $TMP/port ]] || die "the sink did not start"
PORT=$(cat "$TMP/port")
URL="http://127.0.0.1:$PORT"
echo "== sink on $URL (pid $SINK_PID${PIN_SINK:+, CPU ${CPUS[1]}})"
sink_stats() {
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1] + "/stats").read().decode())' "$URL"
}

TIME=()
[[ -x /usr/bin/time ]] && TIME=(/usr/bin/time -f %M -o "$TMP/rss")
# measure LABEL CPUS KIND COMMAND...: runs the command RUNS times, one result line per run in
# $TMP/results: label, cpus, kind, seconds, peak RSS KB, sink requests, sink bytes, own requests.
measure() {
  local label=$1 cpus=$2 kind=$3 i start end before after
  shift 3
  echo "== $label: $*" | sed "s#$TMP#\$TMP#g"
  for ((i = 1; i <= RUNS; i++)); do
    local cmd=("$@")
    # Each Rust run gets a checkpoint of its own: the backfill skips the files one says are done.
    [[ $kind == rust ]] && cmd+=(--checkpoint "$TMP/ckpt-$label-$i-$RANDOM" "$DIR")
    rm -f "$TMP/rss"
    before=$(sink_stats)
    start=$(date +%s%N)
    if ! "${TIME[@]}" "${cmd[@]}" >"$TMP/out" 2>"$TMP/err"; then
      cat "$TMP/out" "$TMP/err" >&2
      die "$label failed (run $i)"
    fi
    end=$(date +%s%N)
    after=$(sink_stats)
    python3 - "$label" "$cpus" "$kind" "$start" "$end" "$TMP/rss" "$before" "$after" "$TMP/out" \
      >>"$TMP/results" <<'PY'
import json, os, sys
label, cpus, kind, start, end, rss, before, after, out = sys.argv[1:]
seconds = (int(end) - int(start)) / 1e9
kb = open(rss).read().split()[-1] if os.path.exists(rss) else "0"
b, a = json.loads(before), json.loads(after)
own = ""
if kind == "node":
    own = json.loads(open(out).read().strip().splitlines()[-1])["requests"]
print("\t".join(map(str, [label, cpus, kind, seconds, kb, a["requests"] - b["requests"],
                          a["bytes"] - b["bytes"], own])))
PY
    tail -1 "$TMP/results" | awk -F'\t' '{printf "   run %d: %.3f s, %d requests, %d bytes\n", '"$i"', $4, $6, $7}'
    if [[ $kind == rust && $i == "$RUNS" ]]; then
      echo "   its summary (stderr):"; sed 's/^/     /' "$TMP/err" | tail -5
    fi
  done
}

RUST_ENV=(env -u SECRET_ID -u DEAD_LETTER_QUEUE_URL -u REFUSED_QUEUE_URL
  SEGMENT_WRITE_KEY=bench-key SEGMENT_REGION=us SEGMENT_ENDPOINT_US="$URL")
RUST=("$BIN" backfill --rate 100000 --concurrency 4)
NODE=(node benches/node_backfill.js "$DIR" --url "$URL" --key bench-key)

if [[ $NODE_ONLY == 0 ]]; then
  measure "Rust, one CPU" 1 rust "${RUST_ENV[@]}" "${PIN_ONE[@]}" "${RUST[@]}"
  [[ $TWO_CPUS == 1 ]] && measure "Rust, two CPUs" 2 rust "${RUST_ENV[@]}" "${PIN_TWO[@]}" "${RUST[@]}"
fi
measure "Node, one CPU" 1 node "${PIN_ONE[@]}" "${NODE[@]}"
[[ $TWO_CPUS == 1 ]] && measure "Node, two CPUs" 2 node "${PIN_TWO[@]}" "${NODE[@]}"

# --- the table
echo
python3 - "$TMP/results" "$EVENTS" "$RUNS" <<'PY'
import statistics, sys
path, events, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = {}
for line in open(path):
    label, cpus, kind, seconds, kb, req, nbytes, own = line.rstrip("\n").split("\t")
    r = rows.setdefault(label, {"cpus": int(cpus), "kind": kind, "s": [], "kb": [], "req": [], "own": []})
    r["s"].append(float(seconds)); r["kb"].append(int(kb)); r["req"].append(int(req))
    if own: r["own"].append(int(own))
print(f"| run | events | median s (of {runs}) | events/s | events/s per CPU | peak RSS MB |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for label, r in rows.items():
    med = statistics.median(r["s"])
    r["eps"] = events / med
    r["per_cpu"] = r["eps"] / r["cpus"]
    rss = max(r["kb"]) / 1024
    print(f"| {label} | {events:,} | {med:.3f} | {r['eps']:,.0f} | {r['per_cpu']:,.0f} | "
          + (f"{rss:.1f} |" if rss else "n/a |"))
print()
for cpus, name in ((1, "one CPU"), (2, "two CPUs")):
    rust, node = rows.get(f"Rust, {name}"), rows.get(f"Node, {name}")
    if rust and node:
        print(f"Rust/Node on {name}: {rust['per_cpu'] / node['per_cpu']:.2f}x per CPU (goal >= 4x)")
rust1 = rows.get("Rust, one CPU")
if rust1:
    print(f"Goal >= 100,000 events/s per CPU (one-CPU run): {rust1['per_cpu']:,.0f}")
print("Machines are noisy: compare the ratios within one run, not figures across runs or machines.")
for label, r in rows.items():
    if min(r["req"]) == 0:
        print(f"WARNING: a '{label}' run sent no request to the sink")
    if r["own"] and r["own"] != r["req"]:
        print(f"WARNING: '{label}' counted {r['own']} requests, the sink saw {r['req']}")
PY

# --- the sink's totals: every run's requests should have reached it
kill "$SINK_PID"
wait "$SINK_PID" || true
SINK_PID=
echo
echo "sink totals: $(cat "$TMP/sink.out") (the runs above: $(awk -F'\t' '{r += $6; b += $7} END {printf "%.0f requests, %.0f bytes", r, b}' "$TMP/results"))"
