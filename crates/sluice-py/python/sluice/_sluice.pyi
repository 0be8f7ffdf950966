"""The native module: the Python classes of ``sluice`` wrap it; use those."""

from typing import Any

import pyarrow as pa

__version__: str

class NativeLake:
    @staticmethod
    def open(config: str | None = None) -> NativeLake: ...
    @property
    def config_source(self) -> str: ...
    def tables(self, namespace: str | None = None) -> list[str]: ...
    def refs(self, table: str) -> list[dict[str, Any]]: ...
    def create_ref(self, table: str, name: str, at: str, branch: bool) -> int: ...
    def delete_ref(self, table: str, name: str, branch: bool) -> None: ...
    def merge(self, table: str, branch: str, into: str) -> dict[str, Any]: ...
    def merge_tables(self, tables: list[str], branch: str, into: str) -> list[dict[str, Any]]: ...
    def run_job(self, job: str, author: str | None = None) -> dict[str, Any]: ...
    def rollback(self, table: str, to: str, branch: str) -> int: ...
    def log(self, table: str, reference: str, limit: int | None = None) -> list[dict[str, Any]]: ...
    def scan(
        self,
        table: str,
        reference: str,
        columns: list[str] | None = None,
        limit: int | None = None,
    ) -> pa.RecordBatchReader: ...
    def sql(self, query: str) -> pa.RecordBatchReader: ...
    def audit(
        self,
        table: str,
        reference: str,
        checks_path: str | None = None,
        checks_json: str | None = None,
        samples: int = 5,
        key_columns: list[str] = ...,
    ) -> dict[str, Any]: ...
    def run(
        self,
        source: str,
        table: str,
        checks_path: str | None = None,
        checks_json: str | None = None,
        mode: str = "copy",
        partition_by: str | None = None,
        message: str | None = None,
        author: str | None = None,
        rewrite: bool = False,
        add_columns: bool = False,
        truncate_timestamps: bool = False,
        samples: int = 5,
        key_columns: list[str] = ...,
        keep_failed: bool = False,
    ) -> dict[str, Any]: ...
    def import_files(
        self,
        source: str,
        table: str,
        branch: str,
        mode: str = "copy",
        partition_by: str | None = None,
        message: str | None = None,
        author: str | None = None,
        rewrite: bool = False,
        add_columns: bool = False,
        truncate_timestamps: bool = False,
    ) -> dict[str, Any]: ...
    def runs(self, limit: int | None = None) -> list[dict[str, Any]]: ...
    def show_run(self, run_id: str) -> dict[str, Any]: ...
    def recover(self) -> dict[str, Any]: ...
