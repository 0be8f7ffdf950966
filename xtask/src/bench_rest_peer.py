"""Points a pyiceberg script written for the SQLite SQL catalog at an Iceberg REST catalog.

usage: rest_peer.py PROPERTIES_JSON --drop TABLE...
       rest_peer.py PROPERTIES_JSON SCRIPT [ARGS...]

PROPERTIES_JSON holds the RestCatalog properties (uri, warehouse, s3.*). The first form drops
the named tables, with their files, where they exist. The second makes
pyiceberg.catalog.sql.SqlCatalog a function that returns that REST catalog (the SQLite URI and
the local warehouse the script passes are ignored) and runs SCRIPT, unchanged, as __main__ with
ARGS as its arguments.

Written into target/bench-wap/ by `cargo xtask bench-wap --target rest`.
"""

import json
import runpy
import sys

from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError


def rest_catalog(properties):
    return RestCatalog("default", **properties)


def drop(properties, tables):
    catalog = rest_catalog(properties)
    for table in tables:
        try:
            catalog.purge_table(table)
        except NoSuchTableError:
            continue
        print(f"dropped {table}")


def run(properties, script, args):
    import pyiceberg.catalog.sql

    def sql_catalog_stand_in(*_args, **_kwargs):
        return rest_catalog(properties)

    pyiceberg.catalog.sql.SqlCatalog = sql_catalog_stand_in
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    properties = json.loads(sys.argv[1])
    if sys.argv[2] == "--drop":
        drop(properties, sys.argv[3:])
    else:
        run(properties, sys.argv[2], sys.argv[3:])


main()
