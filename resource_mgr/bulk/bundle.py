"""Reading a bundle: a directory, a .zip or a .tar(.gz) of the CSV files of format.py.

An archive is checked before anything is read from it, and refused whole (`BundleRefused`, with
a problem naming the entry) when an entry is a link, a device or pipe, has a name that climbs out
of the archive (`../x`, `/x`, `C:\\x`), shares its base name with another entry, or when the
entries declare more bytes than the limit or compress implausibly well (a zip bomb). Declared
sizes can lie, so the bytes actually read are counted too, and so are the data rows: past either
limit the reading stops with `BundleRefused`."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from resource_mgr.bulk.format import FILE_BY_NAME, FILES, FORMAT_NAME, FORMAT_VERSION, MANIFEST, Problem

# An archive whose entries declare more than this many bytes is checked for its compression
# ratio (small bundles compress in odd ways and are harmless).
RATIO_FLOOR_BYTES = 64 * 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


class BundleRefused(ValueError):
    """The bundle as a whole is refused (its structure, or past a limit); nothing is imported."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems[:5]))
        self.problems = problems


class _Counted(io.RawIOBase):
    """A member's bytes as they are read, counted against the bundle's limit."""

    def __init__(self, raw: Any, count: Any) -> None:
        self.raw = raw
        self.count = count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self.count(n)
        return n

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


def _bad_name(name: str) -> str | None:
    """Why an entry's name is not a plain relative one, or None."""
    if "\x00" in name:
        return "its name holds a NUL character"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "an absolute name: a bundle's entries are relative"
    if ".." in re.split(r"[/\\]", name):
        return "its name climbs out of the archive (..)"
    return None


class BundleReader:
    """Reads a bundle from a directory, a .zip or a .tar(.gz). `rows(name)` yields
    (line number, {column: raw text}) for each data row; header problems (unknown or missing
    required columns) are collected in `problems`. A missing file reads as empty.

    `max_bytes`: an archive expanding to more is refused; `max_rows`: a bundle with more data
    rows is refused; `max_ratio`: an archive of more than RATIO_FLOOR_BYTES expanding more than
    this many times its own size is refused. None: no limit."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int | None = None, max_rows: int | None = None,
                 max_ratio: float | None = None) -> None:
        self.path = Path(path)
        self.problems: list[Problem] = []
        self.headers: dict[str, list[str]] = {}
        self.max_bytes, self.max_rows, self.max_ratio = max_bytes, max_rows, max_ratio
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, str] = {}
        self._bytes_read: dict[str, int] = {}  # member -> most bytes read from it in one pass
        self._rows_read = 0
        if self.path.is_dir():
            names = [p.name for p in self.path.iterdir() if p.is_file()]
            self._members = {n: n for n in names}
        elif zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            self._check_entries(self._zip_entries(self._zip))
        elif self.path.is_file() and tarfile.is_tarfile(self.path):
            self._tar = tarfile.open(self.path)
            self._check_entries(self._tar_entries(self._tar))
        else:
            raise FileNotFoundError(f"{self.path.name}: not a bundle directory, .zip or .tar")
        known = {f.filename for f in FILES} | {MANIFEST}
        for name in sorted(self._members):
            if name not in known and not name.startswith(".") and name.lower() not in ("readme.md", "readme.txt"):
                self.problems.append(Problem(name, 0, "", f"unknown file; expected one of {', '.join(sorted(known))}"))
        self.manifest: dict[str, Any] = {}
        if MANIFEST in self._members:
            try:
                self.manifest = json.loads(self._open_text(MANIFEST).read())
            except ValueError as exc:
                if isinstance(exc, BundleRefused):
                    raise
                self.problems.append(Problem(MANIFEST, 0, "", f"not valid JSON: {exc}"))
            else:
                if not isinstance(self.manifest, dict):
                    self.problems.append(Problem(MANIFEST, 0, "", "must be a JSON object"))
                    self.manifest = {}
                elif self.manifest.get("format") not in (None, FORMAT_NAME) or \
                        self.manifest.get("version", FORMAT_VERSION) != FORMAT_VERSION:
                    self.problems.append(Problem(MANIFEST, 0, "version",
                                                 f"expected format {FORMAT_NAME} version {FORMAT_VERSION}"))

    # -- the archive's entries -----------------------------------------------------------------

    @staticmethod
    def _zip_entries(z: zipfile.ZipFile) -> Iterator[tuple[str, str, int]]:
        """(name, what it is: file | dir | link | device, declared size)."""
        for info in z.infolist():
            # the Unix file type, when the archive was made on Unix and says (some tools keep
            # only the permission bits: a plain file then)
            ftype = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            if info.is_dir() or ftype == stat.S_IFDIR:
                what = "dir"
            elif ftype == stat.S_IFLNK:
                what = "link"
            elif ftype in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
                what = "device"
            else:
                what = "file"
            yield info.filename, what, info.file_size

    @staticmethod
    def _tar_entries(t: tarfile.TarFile) -> Iterator[tuple[str, str, int]]:
        for m in t.getmembers():
            if m.isdir():
                what = "dir"
            elif m.issym() or m.islnk():
                what = "link"
            elif m.isfile():
                what = "file"
            else:
                what = "device"
            yield m.name, what, m.size if m.isfile() else 0

    def _check_entries(self, entries: Iterator[tuple[str, str, int]]) -> None:
        refused: list[Problem] = []
        declared = 0
        for name, what, size in entries:
            reason = _bad_name(name)
            if reason is None and what == "link":
                reason = "a link: a bundle holds plain files only"
            elif reason is None and what == "device":
                reason = "a device, pipe or socket: a bundle holds plain files only"
            if reason is not None:
                refused.append(Problem(name, 0, "", reason))
                continue
            if what == "dir":
                continue
            base = PurePosixPath(name.replace("\\", "/")).name
            if base in self._members:
                refused.append(Problem(name, 0, "", f"another entry has the same file name "
                                                    f"({self._members[base]}): which one is meant?"))
                continue
            self._members[base] = name
            declared += size
        if self.max_bytes is not None and declared > self.max_bytes:
            refused.append(Problem(self.path.name, 0, "", f"the archive expands to {declared:,} bytes, more than "
                                                          f"the limit of {self.max_bytes:,}"))
        archive_size = max(self.path.stat().st_size, 1)
        if self.max_ratio is not None and declared > RATIO_FLOOR_BYTES and declared / archive_size > self.max_ratio:
            refused.append(Problem(self.path.name, 0, "", f"the archive expands {declared / archive_size:,.0f} times "
                                                          f"its size (at most {self.max_ratio:g}): refused as a "
                                                          "likely archive bomb"))
        if refused:
            self.close()
            raise BundleRefused(refused)

    def _counter(self, member: str) -> Any:
        read = [0]

        def count(n: int) -> None:
            read[0] += n
            if read[0] > self._bytes_read.get(member, 0):
                self._bytes_read[member] = read[0]
                if self.max_bytes is not None and sum(self._bytes_read.values()) > self.max_bytes:
                    raise BundleRefused([Problem(member, 0, "", f"the archive expands to more than the limit of "
                                                                f"{self.max_bytes:,} bytes (counted while reading)")])
        return count

    def _open_text(self, name: str) -> io.TextIOBase:
        member = self._members[name]
        if self._zip is not None:
            raw: Any = self._zip.open(member)
        elif self._tar is not None:
            raw = self._tar.extractfile(member)
            assert raw is not None
        else:
            return open(self.path / member, encoding="utf-8-sig", newline="")
        stream = io.BufferedReader(_Counted(raw, self._counter(member)), buffer_size=1 << 16)
        return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")

    # -- reading -------------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return FILE_BY_NAME[name].filename in self._members

    def count_rows(self, name: str) -> int:
        """Data rows of a file: from the manifest when it says, else by counting lines."""
        spec = FILE_BY_NAME[name]
        n = (self.manifest.get("files") or {}).get(spec.filename) \
            if isinstance(self.manifest.get("files"), dict) else None
        if not isinstance(n, int):
            if not self.has(name):
                return 0
            with self._open_text(spec.filename) as fh:
                n = max(sum(1 for _ in csv.reader(fh)) - 1, 0)
        return n

    def rows(self, name: str) -> Iterator[tuple[int, dict[str, str]]]:
        for line, record in self.records(name):
            yield line, dict(zip(self.headers[name], record))

    def _too_many_rows(self, file: str, line: int) -> BundleRefused:
        return BundleRefused([Problem(file, line, "", f"the bundle has more than {self.max_rows:,} data rows, "
                                                      "the limit: split it")])

    def records(self, name: str) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) per data row; the file's header is in `headers[name]`."""
        spec = FILE_BY_NAME[name]
        if not self.has(name):
            return
        limit = self.max_rows
        with self._open_text(spec.filename) as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                return
            cols = spec.by_name
            bad = False
            for h in header:
                if h not in cols:
                    self.problems.append(Problem(spec.filename, 1, h, f"unknown column; expected {', '.join(cols)}"))
                    bad = True
            if len(set(header)) != len(header):
                self.problems.append(Problem(spec.filename, 1, "", "a column appears twice"))
                bad = True
            for c in spec.columns:
                if c.required and c.name not in header:
                    self.problems.append(Problem(spec.filename, 1, c.name, "required column is missing"))
                    bad = True
            if bad:
                return
            self.headers[name] = header
            width = len(header)
            line = 1
            rows_read = self._rows_read
            try:
                for record in reader:
                    line += 1
                    if not record:
                        continue
                    rows_read += 1
                    if limit is not None and rows_read > limit:
                        raise self._too_many_rows(spec.filename, line)
                    if len(record) != width:
                        self.problems.append(Problem(spec.filename, line, "",
                                                     f"{len(record)} cells where the header has {width}"))
                        continue
                    yield line, record
            finally:
                self._rows_read = rows_read

    def check_declared_rows(self, total: int) -> None:
        """Refuse now a bundle that says (manifest) or shows (line count) more rows than the limit."""
        if self.max_rows is not None and total > self.max_rows:
            raise BundleRefused([Problem(MANIFEST if self.manifest else self.path.name, 0, "",
                                         f"the bundle has {total:,} data rows, more than the limit of "
                                         f"{self.max_rows:,}: split it")])

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> "BundleReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
