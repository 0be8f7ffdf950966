"""bench-sql: `sluice sql` against DuckDB's iceberg_scan over the same tables, interleaved.

argv: sluice binary, source directory, the same events spread over 30 days, work directory,
repeats. Runs under a python with duckdb, duckdb-extension-iceberg and -avro. Prints one JSON
document.
"""

import glob
import json
import os
import re
import sqlite3
import subprocess
import sys
import time

import duckdb
import duckdb_extension_avro
import duckdb_extension_iceberg

binary, source, spread, work, repeats = sys.argv[1:5] + [int(sys.argv[5])]
lake = os.path.join(work, "lake")
subprocess.run(["rm", "-rf", lake], check=True)
os.makedirs(lake)


def sluice(*args):
    out = subprocess.run([binary, "--json", "--quiet", *args], cwd=lake, capture_output=True)
    if out.returncode != 0:
        sys.exit(f"sluice {' '.join(args)} failed: {out.stdout.decode()} {out.stderr.decode()}")
    return json.loads(out.stdout)


# The tables, written once (not timed): the events as they come, and spread over 30 days in a
# table partitioned by day.
sluice("run", "--source", source, "--table", "bench.events")
sluice("run", "--source", spread, "--table", "bench.daily", "--partition-by", "day(ts)")
catalog = sqlite3.connect(os.path.join(lake, ".sluice", "catalog.db"))


def metadata(table):
    (location,) = catalog.execute(
        "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = 'bench' AND table_name = ?",
        (table,),
    ).fetchone()
    return location.removeprefix("file://")


def extension(module):
    return glob.glob(os.path.join(os.path.dirname(module.__file__), "extensions", "*", "*.duckdb_extension"))[0]


EXTENSIONS = [extension(duckdb_extension_avro), extension(duckdb_extension_iceberg)]


def duckdb_rows(query):
    """A fresh connection each time: the extension loaded and the metadata read, as a new
    process of DuckDB would (without the process start, which favours DuckDB)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for path in EXTENSIONS:
        con.sql(f"LOAD '{path}'")
    con.sql("SET TimeZone = 'UTC'")
    return con.sql(query).fetchall()


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


GROUP_BY = "SELECT event_type, count(*) AS n, sum(amount) AS total FROM {} GROUP BY 1 ORDER BY 1"
events = metadata("events")
sluice_s, duckdb_s, same = [], [], True
for r in range(repeats):
    order = ["sluice", "duckdb"] if r % 2 == 0 else ["duckdb", "sluice"]
    for tool in order:
        if tool == "sluice":
            took, rows = timed(lambda: sluice("sql", GROUP_BY.format("bench.events")))
            sluice_s.append(took)
            ours = [(r["event_type"], r["n"], round(r.get("total") or 0, 3)) for r in rows]
        else:
            took, rows = timed(lambda: duckdb_rows(GROUP_BY.format(f"iceberg_scan('{events}')")))
            duckdb_s.append(took)
            theirs = [(t, n, round(total or 0, 3)) for t, n, total in rows]
    same = same and ours == theirs

# A selective filter on the partitioned table: one day of thirty.
(first_ts,) = duckdb_rows(f"SELECT epoch_us(min(ts)) FROM iceberg_scan('{metadata('daily')}')")[0]
day = (first_ts // 86_400_000_000 + 10) * 86_400
start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day))
end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day + 86_400))
ONE_DAY = f"SELECT count(*) AS n, sum(amount) AS total FROM bench.daily WHERE ts >= '{start}' AND ts < '{end}'"
plans = " ".join(row.get("plan", "") for row in sluice("sql", "EXPLAIN " + ONE_DAY))
files = re.search(r"SluiceScan: .* files=(\d+) of (\d+)", plans)
if files is None:
    sys.exit(f"EXPLAIN shows no files read: {plans}")
files_read, files_total = int(files.group(1)), int(files.group(2))
day_sluice, day_duckdb = [], []
for r in range(repeats):
    took, _ = timed(lambda: sluice("sql", ONE_DAY))
    day_sluice.append(took)
    duck = ONE_DAY.replace("bench.daily", f"iceberg_scan('{metadata('daily')}')").replace(
        f"'{start}'", f"TIMESTAMPTZ '{start}'"
    ).replace(f"'{end}'", f"TIMESTAMPTZ '{end}'")
    took, _ = timed(lambda: duckdb_rows(duck))
    day_duckdb.append(took)

print(
    json.dumps(
        {
            "group_by": GROUP_BY.format("bench.events"),
            "sluice_s": sluice_s,
            "duckdb_s": duckdb_s,
            "same_rows": same,
            "one_day": ONE_DAY,
            "files_read": files_read,
            "files_total": files_total,
            "one_day_sluice_s": day_sluice,
            "one_day_duckdb_s": day_duckdb,
        }
    )
)
