"""bench-serve: the source files the load's events name, written straight into the S3 server's
bucket directory (s3s-fs serves plain files).

argv: output directory, files, rows per file. File k holds rows with file_no = k, so a count of
distinct file_no in the table says how many files it holds.
"""

import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

out, files, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
types = pa.array(["view", "click", "purchase", "scroll"])
for k in range(files):
    first = k * rows
    table = pa.table(
        {
            "event_id": pa.array(range(first, first + rows), pa.int64()),
            "file_no": pa.array([k] * rows, pa.int64()),
            "ts": pa.array([1_764_892_800_000_000 + first + i for i in range(rows)], pa.timestamp("us", tz="UTC")),
            "event_type": types.take(pa.array([(first + i) % 4 for i in range(rows)])),
            "amount": pa.array([float((first + i) % 1000) / 10 for i in range(rows)], pa.float64()),
        }
    )
    path = os.path.join(out, f"part-{k:06}.parquet")
    pq.write_table(table, path + ".tmp", compression="snappy")
    os.replace(path + ".tmp", path)
