"""Cutover mapping files: CSV or Excel (.xlsx) with the columns `old,new[,keep_number]`.

- `read_mapping(data, filename)` -> `[{"old", "new", "keep_number"}...]` in file order. CSV may be
  UTF-8 (with or without the BOM Excel writes), UTF-16 with a BOM, or GBK / GB18030 (what Excel
  on a Chinese Windows saves); comma, semicolon or tab separated. Excel: the first sheet, the
  header in its first non-blank row. Header names are matched without case or surrounding
  blanks (`舊`/`新`/`保留號碼` are accepted too); other columns are ignored, so a downloaded plan
  with its note columns can be uploaded as it is. Blank rows are skipped. `keep_number` is
  true/false, 1/0, yes/no, y/n, 是/否; empty means true.
- Anything else raises resource_mgr.errors.Invalid (field `file`) naming the mapping row (1-based,
  as validation counts rows), the file's line or sheet row, and the column.
- `mapping_csv(rows)` (UTF-8 with a BOM, so Excel opens Chinese text right) and
  `mapping_xlsx(rows)` write what read_mapping reads back: the three columns, then any other
  keys the rows carry (notes for the clerk: service, address ...)."""
from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from resource_mgr.cutovers import xlsx
from resource_mgr.errors import Invalid

COLUMNS = ("old", "new", "keep_number")
HEADER_ALIASES = {
    "old": "old", "old_unit": "old", "old_unit_id": "old", "舊": "old", "旧": "old", "原": "old",
    "舊資源": "old", "旧资源": "old",
    "new": "new", "new_unit": "new", "new_unit_id": "new", "新": "new", "新資源": "new", "新资源": "new",
    "keep_number": "keep_number", "keep": "keep_number", "保留號碼": "keep_number", "保留号码": "keep_number",
}
TRUE = frozenset({"true", "1", "yes", "y", "t", "是", "真", "保留"})
FALSE = frozenset({"false", "0", "no", "n", "f", "否", "假", "不保留"})
# A mapping is at most a night's work of a city: far past any real one, short of a memory problem.
MAX_ROWS = 500_000
MAX_CELL = 200  # unit ids are 26 characters; a longer cell is not an id
MAX_XLSX_EXPANDED = 512 * 1024 * 1024  # what a sheet may expand to (a zip bomb is refused)
XLSX_MAGIC = b"PK\x03\x04"


def read_mapping(data: bytes, filename: str, *, max_rows: int = MAX_ROWS) -> list[dict[str, Any]]:
    """The mapping rows of a CSV or .xlsx file (see the module docstring)."""
    name = (filename or "").lower()
    if not data:
        raise Invalid("the mapping file is empty", field="file")
    if data.startswith(XLSX_MAGIC):  # a workbook by its content, whatever its name says
        return _rows(_xlsx_cells(data), "row", max_rows)
    if name.endswith((".xlsx", ".xlsm")):
        raise Invalid(f"{filename} is not an Excel .xlsx workbook (not a zip archive)", field="file")
    if name.endswith(".xls") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise Invalid("old Excel .xls files are not read: save the sheet as .xlsx or CSV", field="file")
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Invalid(f"{filename or 'the file'} is neither a CSV text file nor an .xlsx workbook", field="file")
    return _rows(_csv_cells(_decode(data)), "line", max_rows)


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        encodings = ("utf-8-sig",)
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "gb18030")
    for enc in encodings:
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise Invalid("the CSV file is neither UTF-8 nor GBK text", field="file")


def _csv_cells(text: str) -> Iterator[tuple[int, list[str]]]:
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count) if any(d in first for d in ",;\t") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as exc:
        raise Invalid(f"line {reader.line_num}: not readable as CSV: {exc}", field="file",
                      line=reader.line_num) from None


def _xlsx_cells(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_XLSX_EXPANDED:
                raise Invalid("the workbook expands past "
                              f"{MAX_XLSX_EXPANDED // (1024 * 1024)} MiB: refused", field="file")
    except zipfile.BadZipFile:
        raise Invalid("the workbook cannot be read: not a whole zip archive", field="file") from None
    try:
        yield from xlsx.read_rows(data)
    except xlsx.NotAWorkbook as exc:
        raise Invalid(str(exc), field="file") from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _header(cells: Sequence[Any], where: str, line: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        key = HEADER_ALIASES.get(_text(cell).lower().replace(" ", "_"))
        if key is None:
            continue
        if key in found:
            raise Invalid(f"{where} {line}: the column {key!r} is given twice in the header", field="file",
                          line=line, column=key)
        found[key] = i
    for col in ("old", "new"):
        if col not in found:
            raise Invalid(f"{where} {line}: the header has no {col!r} column (columns old,new[,keep_number])",
                          field="file", line=line, column=col)
    return found


def keep_number_of(value: Any) -> bool | None:
    """True/False for a keep_number cell (empty: True), None when it says neither."""
    text = _text(value).lower()
    if text == "":
        return True
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    return None


def _rows(cells: Iterable[tuple[int, Sequence[Any]]], where: str, max_rows: int) -> list[dict[str, Any]]:
    header: dict[str, int] | None = None
    out: list[dict[str, Any]] = []
    for line, values in cells:
        if all(_text(v) == "" for v in values):
            continue  # blank rows (Excel keeps some at the end)
        if header is None:
            header = _header(values, where, line)
            continue
        n = len(out) + 1
        if n > max_rows:
            raise Invalid(f"the mapping has more than {max_rows} rows: split it", field="file")
        row: dict[str, Any] = {}
        for col in ("old", "new"):
            i = header[col]
            text = _text(values[i]) if i < len(values) else ""
            if not text:
                raise Invalid(f"row {n} ({where} {line}): the {col!r} cell is empty", field="file",
                              row=n, line=line, column=col)
            if len(text) > MAX_CELL:
                raise Invalid(f"row {n} ({where} {line}): the {col!r} cell is {len(text)} characters, "
                              "not a unit id", field="file", row=n, line=line, column=col)
            row[col] = text
        keep = True
        if "keep_number" in header:
            i = header["keep_number"]
            raw = values[i] if i < len(values) else None
            parsed = keep_number_of(raw)
            if parsed is None:
                raise Invalid(f"row {n} ({where} {line}): keep_number {_text(raw)[:40]!r} is not one of "
                              "true/false, 1/0, yes/no, 是/否 (empty: true)", field="file", row=n, line=line,
                              column="keep_number")
            keep = parsed
        row["keep_number"] = keep
        out.append(row)
    if header is None:
        raise Invalid("the mapping file has no header row (columns old,new[,keep_number])", field="file",
                      column="old")
    return out


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    extra: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in COLUMNS:
                extra.setdefault(key)
    return [*COLUMNS, *extra]


def _cell(row: dict[str, Any], col: str, *, excel: bool) -> Any:
    value = row.get(col)
    if col == "keep_number":
        keep = True if value is None else bool(value)
        return keep if excel else ("true" if keep else "false")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    if col not in COLUMNS and isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        value = "'" + value  # a note is never taken for a formula by a spreadsheet
    return value


def mapping_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """The rows as CSV (UTF-8 with a BOM; CRLF as Excel writes)."""
    cols = _columns(rows)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(cols)
    for row in rows:
        w.writerow([_cell(row, c, excel=False) for c in cols])
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


def mapping_xlsx(rows: Sequence[dict[str, Any]], *, sheet: str = "mapping") -> bytes:
    """The rows as an .xlsx workbook of one sheet."""
    cols = _columns(rows)
    return xlsx.write_rows([cols, *([_cell(row, c, excel=True) for c in cols] for row in rows)], sheet=sheet)


__all__ = ["COLUMNS", "keep_number_of", "mapping_csv", "mapping_xlsx", "read_mapping"]
