#!/usr/bin/env bash
# Whole-process performance figures for docs/performance.md (not run by CI).
#   benches/run.sh            # needs: cargo, python3, node, hyperfine (apt-get install hyperfine)
#   BEFORE=/path/to/an/older/moe2seg benches/run.sh   # the same figures for an older build too
# Prints: moe2seg map (100 and 50,000 events; the 50,000 also on one CPU) vs the serde_json floor
# (examples/floor.rs) vs a hand-written Node.js mapping (benches/node_map.js) on 100- and
# 50,000-event bodies; peak RSS on a ~1 MB body; a warm 100-event handler invocation's own
# time and heap allocations; release binary sizes. Machines are noisy: compare the ratios
# within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${BENCH_DIR:-/tmp/moe2seg-bench}"
mkdir -p "$OUT"

# The binaries on their own first: built together with an example, they would get the
# features dev-dependencies turn on (0.5 MB more), which is not what ships.
cargo build --release --quiet --bin moe2seg --bin webhook --bin redeliver --bin backfill
SIZES=$(ls -l target/release/moe2seg target/release/webhook target/release/redeliver target/release/backfill | awk '{print $5, $9}')
cargo build --release --quiet --example floor
BIN=target/release/moe2seg
FLOOR=target/release/examples/floor

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
base = json.load(open("tests/fixtures/batch_100.json"))
def body(n):
    ev = []
    for i in range(n):
        e = dict(base["events"][i % len(base["events"])])
        e["event_uuid"] = f"evt-bench-{i:07d}"
        ev.append(e)
    return {**base, "events": ev}
for n in (100, 900, 50000):
    json.dump(body(n), open(f"{out}/body-{n}.json", "w"))
PY
ls -l "$OUT"/body-*.json | awk '{print $5, $9}'

for n in 100 50000; do
  echo; echo "== $n events"
  before=()
  [[ -n "${BEFORE:-}" ]] && before=(-n "before" "$BEFORE map $OUT/body-$n.json")
  # The large body also pinned to one CPU (taskset): the Node mapping uses more than one.
  one=()
  [[ $n -ge 50000 ]] && command -v taskset >/dev/null &&
    one=(-n "moe2seg map, one CPU" "taskset -c 0 $BIN map $OUT/body-$n.json")
  hyperfine -N --warmup 3 --min-runs 10 \
    "${before[@]}" \
    -n "moe2seg map" "$BIN map $OUT/body-$n.json" \
    "${one[@]}" \
    -n "serde_json floor" "$FLOOR $OUT/body-$n.json" \
    -n "node mapping" "node benches/node_map.js $OUT/body-$n.json" \
    --export-markdown "$OUT/hyperfine-$n.md" --output=null
done

echo; echo "== peak RSS on body-900.json ($(stat -c %s "$OUT/body-900.json") bytes)"
for cmd in ${BEFORE:+"$BEFORE map"} "$BIN map" "$FLOOR" "node benches/node_map.js"; do
  rss=$( { /usr/bin/time -f %M $cmd "$OUT/body-900.json" >/dev/null; } 2>&1 | tail -1)
  echo "$cmd: ${rss} KB"
done

echo; echo "== instructions (valgrind callgrind, deterministic)"
if command -v valgrind >/dev/null; then
  for n in 100 50000; do
    floor=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null $FLOOR "$OUT/body-$n.json" 2>&1 >/dev/null | awk '/refs/ {gsub(",","",$4); print $4}')
    echo "body-$n: floor: $floor instructions"
    for cmd in ${BEFORE:+"$BEFORE map"} "$BIN map"; do
      ins=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null $cmd "$OUT/body-$n.json" 2>&1 >/dev/null | awk '/refs/ {gsub(",","",$4); print $4}')
      python3 -c "import sys; m, f = int(sys.argv[2]), int(sys.argv[3]); print(f'body-{sys.argv[4]}: {sys.argv[1]}: {m:,} instructions, {m / int(sys.argv[4]):,.0f} per event, the floor takes {f / m:.2f}x')" "$cmd" "$ins" "$floor" "$n"
    done
  done
fi

echo; echo "== one warm 100-event invocation inside the process (cargo bench --bench invocation)"
cargo bench --quiet --bench invocation 2>/dev/null

echo; echo "== stripped release binaries (x86_64, as built on their own)"
echo "$SIZES"
