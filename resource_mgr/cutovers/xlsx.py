"""The first sheet of an .xlsx workbook as rows of values, and a one-sheet workbook from rows,
through openpyxl in its streaming modes (read-only and write-only: a cell is not kept as an
object past its row)."""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException

# characters XML 1.0 cannot carry (a note copied from elsewhere may hold one)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class NotAWorkbook(ValueError):
    """The archive is not a workbook that can be read (the message says why)."""


def read_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    """(sheet row number, values by column) for each row of the first sheet."""
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise NotAWorkbook(f"the zip archive is not an Excel .xlsx workbook ({type(exc).__name__})") from None
    try:
        if not wb.worksheets:
            raise NotAWorkbook("the workbook has no sheet")
        for number, values in enumerate(wb.worksheets[0].iter_rows(min_row=1, values_only=True), start=1):
            yield number, [None if v is None else str(v) if not isinstance(v, (bool, int, float)) else v
                           for v in values]
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        if isinstance(exc, NotAWorkbook):
            raise
        raise NotAWorkbook(f"the workbook cannot be read: {type(exc).__name__}") from None
    finally:
        wb.close()


def write_rows(rows: Sequence[Sequence[Any]], *, sheet: str = "Sheet1") -> bytes:
    """A workbook of one sheet holding these rows (text cleaned of what XML cannot carry)."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    for row in rows:
        ws.append([_NOT_XML.sub("", v) if isinstance(v, str) else v for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
