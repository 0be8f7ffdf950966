"""bench-py: sluice's Python package against the sluice CLI (a whole run) and against pyiceberg
(a scan into pyarrow), on the same data, interleaved, in one process.

argv: sluice binary, source directory, work directory, repeats. Prints one JSON document.
"""

import json
import os
import statistics
import subprocess
import sys
import time

import sluice
from pyiceberg.catalog.sql import SqlCatalog

binary, source, work, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
os.makedirs(work, exist_ok=True)


def fresh(name):
    path = os.path.join(work, name)
    subprocess.run(["rm", "-rf", path], check=True)
    os.makedirs(path)
    return path


cli, python_in_process, rows = [], [], set()
last = None
for r in range(repeats):
    order = ["cli", "python"] if r % 2 == 0 else ["python", "cli"]
    for tool in order:
        lake_dir = fresh(f"{tool}-{r}")
        subprocess.run(["sync"], check=True)
        if tool == "cli":
            started = time.perf_counter()
            out = subprocess.run(
                [binary, "--json", "--quiet", "run", "--source", source, "--table", "ns.events"],
                cwd=lake_dir,
                capture_output=True,
                check=True,
            )
            cli.append(time.perf_counter() - started)
            rows.add(json.loads(out.stdout)["rows"])
        else:
            os.chdir(lake_dir)
            started = time.perf_counter()
            report = sluice.run(source, "ns.events")
            python_in_process.append(time.perf_counter() - started)
            rows.add(report.rows)
            last = lake_dir
            os.chdir(work)

# The scan: the table the last Python run wrote, read whole into pyarrow by both.
os.chdir(last)
lake = sluice.Lake.open()
catalog = SqlCatalog(
    "default",
    uri=f"sqlite:///{os.path.join(last, '.sluice', 'catalog.db')}",
    warehouse=f"file://{os.path.join(last, '.sluice', 'warehouse')}",
)
table = catalog.load_table("ns.events")
ours, theirs, scanned = [], [], set()
for r in range(repeats):
    for tool in (["sluice", "pyiceberg"] if r % 2 == 0 else ["pyiceberg", "sluice"]):
        started = time.perf_counter()
        read = lake.scan("ns.events") if tool == "sluice" else table.scan().to_arrow()
        elapsed = time.perf_counter() - started
        (ours if tool == "sluice" else theirs).append(elapsed)
        scanned.add((tool, read.num_rows))
        del read

print(json.dumps({
    "rows": sorted(rows),
    "cli_run_s": cli,
    "python_run_s": python_in_process,
    "run_ratio": statistics.median(python_in_process) / statistics.median(cli),
    "sluice_scan_s": ours,
    "pyiceberg_scan_s": theirs,
    "scan_speedup": statistics.median(theirs) / statistics.median(ours),
    "scanned_rows": sorted(scanned),
}))
