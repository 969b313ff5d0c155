"""Well names of screening plates (`B07`): the one way a well given as B7, b07 or by its row
and column is written, with its row and column as columns of their own."""

from __future__ import annotations

import re
from typing import Any

_WELL = re.compile(r"([A-Za-z]{1,2})0*(\d{1,3})")


def well_columns(well: str) -> dict[str, Any]:
    """{"well": "B07", "well_row": "B", "well_column": 7} for B07, B7, b07 (a name not of
    that form is kept as it is, without row and column)."""
    m = _WELL.fullmatch(well.strip())
    if m is None:
        return {"well": well}
    row, column = m.group(1).upper(), int(m.group(2))
    return {"well": f"{row}{column:02d}", "well_row": row, "well_column": column}


__all__ = ["well_columns"]
