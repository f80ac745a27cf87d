"""Cutover mapping files (resource_mgr/cutovers/files.py): CSV and .xlsx read back what was
written, in the encodings and shapes clerks' tools produce, and every bad file is refused with
an Invalid that names the row and the column."""
from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import Workbook

from resource_mgr.cutovers.files import mapping_csv, mapping_xlsx, read_mapping
from resource_mgr.errors import Invalid

ROWS = [{"old": "01OLD0000000000000000000A1", "new": "01NEW0000000000000000000B1", "keep_number": True},
        {"old": "01OLD0000000000000000000A2", "new": "01NEW0000000000000000000B2", "keep_number": False}]


def _xlsx(*rows: list) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _refused(data: bytes, filename: str, **expect) -> Invalid:
    with pytest.raises(Invalid) as exc:
        read_mapping(data, filename)
    for key, value in expect.items():
        assert exc.value.extra.get(key) == value, (key, exc.value.extra, exc.value.detail)
    assert exc.value.field == "file"
    return exc.value


# -- round trips -------------------------------------------------------------------------------

def test_csv_round_trip_with_note_columns():
    noted = [dict(r, service_id=f"S{i}", address="廣州市天河路1號", note="=SUM(A1)") for i, r in enumerate(ROWS)]
    data = mapping_csv(noted)
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").splitlines()[0] == "old,new,keep_number,service_id,address,note"
    assert "'=SUM(A1)" in data.decode("utf-8-sig")  # a note never becomes a formula
    assert read_mapping(data, "plan.csv") == ROWS


def test_xlsx_round_trip():
    data = mapping_xlsx([dict(r, address="佛山市禪城區") for r in ROWS])
    assert data.startswith(b"PK")
    assert read_mapping(data, "plan.xlsx") == ROWS
    assert read_mapping(data, "named-wrongly.csv") == ROWS  # the content says what it is


def test_round_trip_of_nothing():
    assert read_mapping(mapping_csv([]), "e.csv") == []
    assert read_mapping(mapping_xlsx([]), "e.xlsx") == []


def test_large_mapping_round_trips_both_formats():
    # how fast a 20,000-row file reads is scripts/bench_cutover.py's to say, not a test's
    rows = [{"old": f"01H{i:023d}", "new": f"01J{i:023d}", "keep_number": i % 7 != 0} for i in range(3_000)]
    assert read_mapping(mapping_csv(rows), "big.csv") == rows
    assert read_mapping(mapping_xlsx(rows), "big.xlsx") == rows


# -- what clerks' tools write -------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_csv_encodings(encoding):
    text = "old,new,keep_number\r\nA1,B1,是\r\nA2,B2,否\r\n"
    assert read_mapping(text.encode(encoding), "m.csv") == [
        {"old": "A1", "new": "B1", "keep_number": True}, {"old": "A2", "new": "B2", "keep_number": False}]


@pytest.mark.parametrize("value,expected", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("Y", True), ("是", True), ("", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("N", False), ("否", False)])
def test_keep_number_values(value, expected):
    rows = read_mapping(f"old,new,keep_number\nA,B,{value}\n".encode(), "m.csv")
    assert rows == [{"old": "A", "new": "B", "keep_number": expected}]


def test_csv_shapes_header_case_order_delimiters_blank_lines_no_keep_column():
    assert read_mapping(b" NEW ; Old \nB;A\n\n;\n", "m.csv") == [{"old": "A", "new": "B", "keep_number": True}]
    assert read_mapping(b"old\tnew\tkeep_number\nA\tB\t0\n", "m.txt") == [
        {"old": "A", "new": "B", "keep_number": False}]
    assert read_mapping("舊,新,保留號碼\nA,B,否\n".encode(), "m.csv") == [
        {"old": "A", "new": "B", "keep_number": False}]
    assert read_mapping(b'old,new,comment\n"A","B","two, parts"\n', "m.csv") == [
        {"old": "A", "new": "B", "keep_number": True}]


def test_xlsx_shapes_numbers_booleans_blank_rows_other_sheets():
    data = _xlsx([], ["Old", "New", "Keep_Number", "note"], [12345, "B", False, "x"], [None, None, None],
                  ["A", "B", 1, None])
    assert read_mapping(data, "m.xlsx") == [{"old": "12345", "new": "B", "keep_number": False},
                                            {"old": "A", "new": "B", "keep_number": True}]
    wb = Workbook()
    wb.active.append(["old", "new"])
    wb.active.append(["A", "B"])
    wb.create_sheet("other").append(["nothing", "here"])
    buf = io.BytesIO()
    wb.save(buf)
    assert read_mapping(buf.getvalue(), "m.xlsx") == [{"old": "A", "new": "B", "keep_number": True}]


# -- bad files ----------------------------------------------------------------------------------

def test_missing_columns():
    e = _refused(b"old,keep_number\nA,1\n", "m.csv", column="new", line=1)
    assert "'new'" in e.detail
    _refused(b"new\nB\n", "m.csv", column="old")
    _refused(_xlsx(["from", "to"], ["A", "B"]), "m.xlsx", column="old", line=1)


def test_column_given_twice():
    _refused(b"old,new,old\nA,B,C\n", "m.csv", column="old")


def test_empty_cells_name_row_line_and_column():
    e = _refused(b"old,new\nA,B\n\nC,\n", "m.csv", row=2, line=4, column="new")
    assert "row 2" in e.detail and "line 4" in e.detail and "'new'" in e.detail
    _refused(b"old,new\n,B\n", "m.csv", row=1, line=2, column="old")
    _refused(b"old,new\nA\n", "m.csv", row=1, column="new")  # a short line
    _refused(_xlsx(["old", "new"], ["A", "B"], ["A2", None]), "m.xlsx", row=2, line=3, column="new")


def test_bad_keep_number():
    e = _refused(b"old,new,keep_number\nA,B,maybe\n", "m.csv", row=1, line=2, column="keep_number")
    assert "maybe" in e.detail
    _refused(_xlsx(["old", "new", "keep_number"], ["A", "B", 7]), "m.xlsx", row=1, column="keep_number")


def test_a_cell_too_long_for_an_id():
    _refused(b"old,new\n" + b"A" * 500 + b",B\n", "m.csv", row=1, column="old")


def test_no_header_or_empty():
    _refused(b"", "m.csv")
    _refused(b"\n\n , \n", "m.csv", column="old")
    _refused(_xlsx(), "m.xlsx", column="old")


def test_neither_csv_nor_xlsx():
    e = _refused(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.png")
    assert "neither" in e.detail
    assert "xls" in _refused(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls").detail
    _refused(b"old,new\nA,B\n", "m.xlsx")  # named .xlsx, is text
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a workbook")
    assert "not an Excel" in _refused(buf.getvalue(), "m.xlsx").detail
    _refused(b"PK\x03\x04 broken", "m.xlsx")
    _refused(b"\xff\xfe\xff" + bytes(range(128, 256)), "m.csv")  # undecodable text


def test_not_decodable_text():
    _refused(b"old,new\n\x81\xff\xfe,B\n", "m.csv")


def test_too_many_rows():
    data = b"old,new\n" + b"A,B\n" * 11
    with pytest.raises(Invalid, match="more than 10 rows"):
        read_mapping(data, "m.csv", max_rows=10)
    assert len(read_mapping(data, "m.csv", max_rows=11)) == 11


def test_zip_bomb_refused(monkeypatch):
    from resource_mgr.cutovers import files
    monkeypatch.setattr(files, "MAX_XLSX_EXPANDED", 1000)
    assert "expands" in _refused(mapping_xlsx(ROWS * 100), "m.xlsx").detail


def test_written_workbook_reads_in_openpyxl_too():
    """The workbook mapping_xlsx writes is a workbook a reader takes: openpyxl
    sees the sheet, the header, booleans as booleans and notes as text (a control character that
    XML cannot carry is dropped)."""
    from openpyxl import load_workbook

    data = mapping_xlsx([dict(ROWS[0], note=" 廣州 <&> \x01")])
    wb = load_workbook(io.BytesIO(data), read_only=True)
    assert wb.sheetnames == ["mapping"]
    assert [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)] == [
        ["old", "new", "keep_number", "note"], [ROWS[0]["old"], ROWS[0]["new"], True, " 廣州 <&> "]]


def test_xlsx_rich_text_gaps_and_formula_results():
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont

    wb = Workbook()
    ws = wb.active
    ws["B1"], ws["D1"] = "old", "new"  # columns B and D, A and C empty
    ws["B2"] = CellRichText([TextBlock(InlineFont(b=True), "01OLD"), "0000000000000000000A1"])
    ws["D2"] = "01NEW0000000000000000000B1"
    buf = io.BytesIO()
    wb.save(buf)
    assert read_mapping(buf.getvalue(), "m.xlsx") == [{"old": ROWS[0]["old"], "new": ROWS[0]["new"],
                                                       "keep_number": True}]
