"""Runs a pyiceberg script written for unpartitioned tables against day(ts)-partitioned ones.

usage: partitioned_peer.py SCRIPT [ARGS...]

Every table the script creates (through the SQLite SQL catalog or a REST catalog) gets the
partition spec day(ts) right after creation, and an append of a pa.RecordBatchReader to a
partitioned table is materialised as a pa.Table first, as pyiceberg 0.12 requires. SCRIPT then
runs unchanged, as __main__ with ARGS as its arguments. It can itself be the SCRIPT of
rest_peer.py.

Written into target/bench-wap/ by `cargo xtask bench-wap --mode partitioned`.
"""

import runpy
import sys

import pyarrow as pa
import pyiceberg.catalog.rest as rest
import pyiceberg.catalog.sql as sql
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform


def partitioned(create):
    def create_table(self, identifier, schema, *args, **kwargs):
        table = create(self, identifier, schema, *args, **kwargs)
        with table.update_spec() as update:
            update.add_field("ts", DayTransform(), "ts_day")
        return self.load_table(identifier)

    return create_table


def materialised(append):
    def append_table(self, df, *args, **kwargs):
        if isinstance(df, pa.RecordBatchReader) and not self.spec().is_unpartitioned():
            df = df.read_all()
        return append(self, df, *args, **kwargs)

    return append_table


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for catalog in (getattr(sql, "SqlCatalog", None), rest.RestCatalog):
        # rest_peer.py replaces SqlCatalog with a function returning a RestCatalog.
        if isinstance(catalog, type):
            catalog.create_table = partitioned(catalog.create_table)
    Table.append = materialised(Table.append)
    script, args = sys.argv[1], sys.argv[2:]
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


main()
