#!/usr/bin/env python3
"""Write MoEngage-like S3 export files (gzip JSON Lines) for benches/backfill.sh.

Usage: benches/make_exports.py OUT_DIR [--files N] [--events-per-file M] [--seed S]

Writes N files OUT_DIR/acme_app/export_day=DD-MM-YYYY/event_exports_<ts>.json.gz, each of M
lines {"app_name", "export_hour", "export_doc_id", "db_name", "export_day", "event"}. The
events cycle through tests/fixtures/batch_100.json's (a Streams body), each with a unique
event_uuid (evt-bf-<file>-<n>) and an event_time spread over its file's export day; every other
field is kept as it is. File i is hour i % 24 of day 28-11-2025 + i // 24 days (<ts> is that
hour's start, Unix seconds). Deterministic for a given seed. gzip level 6. Prints the totals.
"""
import argparse
import datetime
import gzip
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "batch_100.json")
FIRST_DAY = datetime.datetime(2025, 11, 28, tzinfo=datetime.timezone.utc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--events-per-file", type=int, default=25_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.files < 1 or a.events_per_file < 0:
        ap.error("--files must be at least 1 and --events-per-file at least 0")

    with open(FIXTURE, encoding="utf-8") as f:
        body = json.load(f)
    base = body["events"]
    rng = random.Random(a.seed)

    total_events = 0
    total_bytes = 0
    raw_bytes = 0
    for i in range(a.files):
        day = FIRST_DAY + datetime.timedelta(days=i // 24)
        hour = i % 24
        day_start = int(day.timestamp())
        ts = day_start + hour * 3600
        export_day = day.strftime("%d-%m-%Y")
        folder = os.path.join(a.out_dir, "acme_app", f"export_day={export_day}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"event_exports_{ts}.json.gz")
        tmp = path + ".tmp"
        step = 86_400 / max(a.events_per_file, 1)
        # mtime=0 and no file name in the gzip header: the same bytes for the same seed.
        with open(tmp, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0
        ) as gz:
            lines = []
            for n in range(a.events_per_file):
                ev = dict(base[(i * a.events_per_file + n) % len(base)])
                ev["event_uuid"] = f"evt-bf-{i:03d}-{n:07d}"
                ev["event_time"] = day_start + int((n + rng.random()) * step)
                line = {
                    "app_name": "Acme",
                    "export_hour": hour,
                    "export_doc_id": f"{rng.getrandbits(96):024x}",
                    "db_name": "acme",
                    "export_day": export_day,
                    "event": ev,
                }
                lines.append(json.dumps(line, ensure_ascii=False))
                if len(lines) == 1000:
                    data = ("\n".join(lines) + "\n").encode()
                    raw_bytes += len(data)
                    gz.write(data)
                    lines = []
            if lines:
                data = ("\n".join(lines) + "\n").encode()
                raw_bytes += len(data)
                gz.write(data)
        os.replace(tmp, path)
        total_events += a.events_per_file
        total_bytes += os.path.getsize(path)

    print(
        json.dumps(
            {
                "files": a.files,
                "events": total_events,
                "bytes": total_bytes,
                "uncompressed_bytes": raw_bytes,
                "dir": os.path.abspath(a.out_dir),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
