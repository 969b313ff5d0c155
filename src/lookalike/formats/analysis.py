"""Writing an analysis (`Collection.analyze`) per image: CSV, JSON, Parquet and Orange's .tab,
where the cluster is a discrete meta attribute and the flags discrete ones, as Orange's own
clustering widgets output them."""

from __future__ import annotations

import json
import os
from typing import Any

from .export import (
    ExportColumn,
    arrow_table,
    atomic_write,
    delimited_rows,
    header_line,
    orange_named,
    orange_tab_columns,
    resolve_format,
    tab_header,
    tab_records,
)
from .orange import orange_origin

ANALYSIS_FORMATS = ("csv", "json", "tab", "parquet")

_KINDS = {"id": "int", "path": "str", "name": "str", "category": "str", "cluster": "int",
          "typicality": "float", "outlier": "float", "sample_rank": "int"}


def analysis_records(analysis: Any) -> tuple[list[dict], list[ExportColumn]]:
    """One record per image of an `analysis.analyze.Analysis`, and its columns."""
    columns = analysis.columns()
    names = list(columns)
    records = []
    for n in range(len(analysis)):
        record = {}
        for name in names:
            value = columns[name][n]
            record[name] = value.item() if hasattr(value, "item") else value
        record["root"] = analysis.rows[n].get("root")
        records.append(record)
    return records, [ExportColumn(name, name, _KINDS.get(name, "bool")) for name in names]


def write_analysis(analysis: Any, format: str | None, path: str | os.PathLike) -> None:
    """Every image's results into the file `path`, as `format` (default: from the extension)."""
    format = resolve_format(path, format, ANALYSIS_FORMATS)
    records, columns = analysis_records(analysis)
    with atomic_write(path) as f:
        if format == "parquet":
            import pyarrow.parquet as pq

            table = arrow_table(records, columns)
            meta = {"model": analysis.model, "method": analysis.method}
            pq.write_table(table.replace_schema_metadata({"lookalike": json.dumps(meta)}), f)
        elif format == "json":
            names = [c.name for c in columns]
            text = json.dumps([{k: r[k] for k in names} for r in records], indent=2,
                              ensure_ascii=False)
            f.write((text + "\n").encode("utf-8"))
        elif format == "csv":
            f.write(header_line([c.name for c in columns], ",")
                    + delimited_rows(arrow_table(records, columns), ","))
        else:
            origin = orange_origin([r["path"] for r in records], [r["root"] for r in records])
            order = ["category", "name", "path"]
            by_key = {c.key: c for c in columns}
            ordered = [by_key[k] for k in order] + [c for c in columns if c.key not in order]
            tab = orange_tab_columns(orange_named(ordered), origin,
                               any(r["category"] for r in records))
            f.write(tab_header(tab, 0) + delimited_rows(
                arrow_table(tab_records(records, origin), [t.column for t in tab]), "\t"))
