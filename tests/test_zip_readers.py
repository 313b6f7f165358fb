"""ZIP archives as every kind of reader sees them.

- Streaming readers from a pipe: Java's ZipInputStream (which refuses a stored
  entry framed by a data descriptor) and bsdtar.
- The header rules, checked by parsing the records ourselves: stored entries
  carry CRC and sizes in the local header and no data descriptor; UTC mtime
  in a 0x5455 field; ZIP64 fields exactly where APPNOTE's sentinels need them.
- ZIP64 boundaries, each archive written in process (sparse on disk) and read
  back by Python's zipfile, unzip, 7z and bsdtar: 65,534 / 65,535 / 65,536
  entries, and files of 2**32 - 2, 2**32 - 1 and 2**32 + 1 bytes.

The size-boundary archive holds 12 GiB of (mostly sparse) data. It is built
once, with the CRC cache warmed by CRCs the test computes itself (so the
encoder reads each file once and checks it against them), and zipfile reads
it all again to check every CRC: the bulk of this file's run time.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from isal.isal_zlib import crc32  # zlib's runs at 0.5 GiB/s: too slow for 12 GiB

from tests.helpers import MTIME, Site, run
from zipserve.core.formats.zip import FLAG_UTF8
from zipserve.core.formats.zipextra import UnicodePath, parse_unicode_path
from zipserve.service import Service
from zipserve.settings import Settings

SLOW = 120  # seconds a reader may take over an archive of many entries or 12 GiB
LIMIT = 0xFFFFFFFF  # a size or offset at or above this lives in a ZIP64 field
COUNT_LIMIT = 0xFFFF
LOCAL = struct.Struct("<4s5H3L2H")  # APPNOTE 4.3.7
CENTRAL = struct.Struct("<4s6H3L5H2L")  # APPNOTE 4.3.12
END = struct.Struct("<4s4H2LH")  # APPNOTE 4.3.16
END64 = struct.Struct("<4sQ2H2L4Q")  # APPNOTE 4.3.14
LOCATOR = struct.Struct("<4sLQL")  # APPNOTE 4.3.15
ZIP64_ID, TIME_ID = 0x0001, 0x5455
ROOT_ZIP = "/archive?path=.&format=zip"


# --- a ZIP parser of our own: every record, every field as written ----------------------------


@dataclass
class Record:
    """A local or central header, its fixed fields as written (sentinels included)."""

    name: str
    needed: int
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    dos: tuple[int, int]  # (date, time)
    extra: dict[int, bytes]
    offset: int = -1  # central records: the local header offset field
    start: int = 0  # where this record itself starts in the archive
    length: int = 0  # its length, name and extra included

    def zip64(self) -> tuple[int, ...]:
        """Return the 8-byte values of the ZIP64 field (empty when there is none)."""
        raw = self.extra.get(ZIP64_ID, b"")
        return struct.unpack(f"<{len(raw) // 8}Q", raw)

    def real(self) -> tuple[int, int, int]:
        """Return (size, compressed size, offset) with sentinels resolved (APPNOTE 4.5.3 order)."""
        values = list(self.zip64())
        usize = values.pop(0) if self.usize == LIMIT else self.usize
        csize = values.pop(0) if self.csize == LIMIT else self.csize
        offset = values.pop(0) if self.offset == LIMIT else self.offset
        return usize, csize, offset


@dataclass
class Parsed:
    central: list[Record]
    local: list[Record]
    end: tuple[int, ...]  # EOCD: disk, cd disk, count on disk, count, cd size, cd start, comment
    end64: tuple[int, ...] | None  # ZIP64 EOCD: count on disk, count, cd size, cd start
    cd_start: int
    size: int


def extras(raw: bytes) -> dict[int, bytes]:
    """Given an extra field, return its blocks by id; fail on a duplicate or a torn block."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(raw):
        ident, size = struct.unpack_from("<HH", raw, pos)
        assert ident not in out and pos + 4 + size <= len(raw), raw.hex()
        out[ident] = raw[pos + 4:pos + 4 + size]
        pos += 4 + size
    return out


def parse(data: bytes | mmap.mmap) -> Parsed:
    """Given a whole ZIP (no comment), return its records; assert each signature on the way."""
    size = len(data)
    end = END.unpack_from(data, size - END.size)
    assert end[0] == b"PK\x05\x06" and end[-1] == 0
    end64 = None
    cd_start, count = end[6], end[4]
    if data[size - END.size - LOCATOR.size:size - END.size][:4] == b"PK\x06\x07":
        locator = LOCATOR.unpack_from(data, size - END.size - LOCATOR.size)
        fields = END64.unpack_from(data, locator[2])
        assert fields[0] == b"PK\x06\x06" and fields[1] == END64.size - 12
        assert locator[2] + END64.size + LOCATOR.size + END.size == size
        end64 = fields[6:]
        cd_start, count = fields[9], fields[7]
    central = []
    pos = cd_start
    for _ in range(count):
        f = CENTRAL.unpack_from(data, pos)
        assert f[0] == b"PK\x01\x02", pos
        nlen, elen, clen = f[10], f[11], f[12]
        name = bytes(data[pos + 46:pos + 46 + nlen])
        raw = bytes(data[pos + 46 + nlen:pos + 46 + nlen + elen])
        length = 46 + nlen + elen + clen
        central.append(Record(name.decode(), f[2], f[3], f[4], f[7], f[8], f[9], (f[6], f[5]),
                              extras(raw), f[16], pos, length))
        pos += length
    local = [parse_local(data, rec.real()[2]) for rec in central]
    return Parsed(central, local, end[1:], end64, cd_start, size)


def parse_local(data: bytes | mmap.mmap, pos: int) -> Record:
    """Given an archive and a local header's offset, return that header."""
    f = LOCAL.unpack_from(data, pos)
    assert f[0] == b"PK\x03\x04", pos
    nlen, elen = f[9], f[10]
    name = bytes(data[pos + 30:pos + 30 + nlen]).decode()
    raw = bytes(data[pos + 30 + nlen:pos + 30 + nlen + elen])
    return Record(name, f[1], f[2], f[3], f[6], f[7], f[8], (f[5], f[4]), extras(raw),
                  start=pos, length=30 + nlen + elen)


def check_zip64_rule(z: Parsed) -> None:
    """Given a parsed stored ZIP, assert ZIP64 appears exactly where APPNOTE's sentinels need it.

    Local header: a ZIP64 field (both sizes) iff the size reaches 0xFFFFFFFF.
    Central record: a ZIP64 field iff the size or the offset reaches it; it
    then always holds both sizes (unzip 6.0 needs them, see formats/zip.py),
    then the offset when that reaches it. ZIP64 end records iff the count
    reaches 0xFFFF or the central directory starts or ends past 0xFFFFFFFF.
    Version needed: 4.5 exactly where a ZIP64 field is, else 2.0.
    """
    for cen, loc in zip(z.central, z.local, strict=True):
        size, csize, offset = cen.real()
        big, far = size >= LIMIT, offset >= LIMIT
        assert (ZIP64_ID in loc.extra) == big, loc.name
        assert loc.zip64() == ((size, size) if big else ())
        assert (loc.usize, loc.csize) == ((LIMIT, LIMIT) if big else (size, size))
        assert loc.needed == (45 if big else 20)
        assert (ZIP64_ID in cen.extra) == (big or far), cen.name
        assert cen.zip64() == ((size, csize) if big or far else ()) + ((offset,) if far else ())
        assert (cen.usize, cen.csize) == ((LIMIT, LIMIT) if big or far else (size, size))
        assert cen.offset == (LIMIT if far else offset)
        assert cen.needed == (45 if big or far else 20)
    count = len(z.central)
    cd_size = z.size - z.cd_start - END.size - (END64.size + LOCATOR.size if z.end64 else 0)
    need64 = count >= COUNT_LIMIT or z.cd_start >= LIMIT or cd_size >= LIMIT
    assert (z.end64 is not None) == need64
    assert z.end[2:] == (min(count, COUNT_LIMIT), min(count, COUNT_LIMIT), cd_size,
                         min(z.cd_start, LIMIT), 0)
    if z.end64 is not None:
        assert z.end64 == (count, count, cd_size, z.cd_start)


def check_back_to_back(z: Parsed) -> None:
    """Given a parsed stored ZIP, assert each entry's data is followed at once by the next header."""
    pos = 0
    for cen, loc in zip(z.central, z.local, strict=True):
        assert loc.start == pos, loc.name  # no data descriptor, no gap
        pos = loc.start + loc.length + cen.real()[0]
    assert pos == z.cd_start


# --- the server and the readers ---------------------------------------------------------------


def shell(pipeline: str) -> str:
    """Run a bash pipeline (pipefail) in CLI_ENV; assert it succeeded; return its stdout as text."""
    return run("bash", "-o", "pipefail", "-c", pipeline, timeout=SLOW)


def expected_entries(root: Path) -> list[tuple[str, int, int]]:
    """Given the tree, return (entry name, size, CRC-32) of everything in it, folders with '/'."""
    out = []
    for path in root.rglob("*"):
        name = path.relative_to(root).as_posix()
        if path.is_dir():
            out.append((name + "/", 0, 0))
        else:
            data = path.read_bytes()
            out.append((name, len(data), zlib.crc32(data)))
    return sorted(out)


JAVA_READER = """
import java.io.PrintStream;
import java.util.zip.*;

public class Reader {
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        ZipInputStream zip = new ZipInputStream(System.in);  // names are UTF-8 by default
        byte[] buf = new byte[65536];
        for (ZipEntry e; (e = zip.getNextEntry()) != null; ) {
            CRC32 crc = new CRC32();
            long n = 0;
            for (int r; (r = zip.read(buf)) > 0; n += r) crc.update(buf, 0, r);
            out.println(e.getName() + "\\t" + n + "\\t" + crc.getValue());
        }
    }
}
"""


@pytest.fixture(scope="module")
def java_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compile a ZipInputStream reader; return its class folder."""
    folder = tmp_path_factory.mktemp("java")
    (folder / "Reader.java").write_text(JAVA_READER)
    run("javac", "-d", str(folder), str(folder / "Reader.java"))
    return folder


@pytest.mark.parametrize("compression", ["store", "deflate", "auto"])
def test_java_zipinputstream_reads_the_zip_from_a_pipe(sample: Site,
                                                        java_reader: Path,
                                                        compression: str) -> None:
    url = f"{sample.url}{ROOT_ZIP}&compression={compression}"
    out = shell(f"curl -sS --fail '{url}' | java -cp '{java_reader}' Reader")
    seen = sorted((name, int(n), int(crc)) for name, n, crc in
                  (line.split("\t") for line in out.splitlines()))
    assert seen == expected_entries(sample.root)


def test_bsdtar_extracts_the_stored_zip_from_a_pipe(sample: Site,
                                                     tmp_path: Path) -> None:
    shell(f"curl -sS --fail '{sample.url}{ROOT_ZIP}&compression=store' | bsdtar -xf - -C "
          f"'{tmp_path}'")
    # (Modes are not checked: a ZIP keeps them only in the central directory,
    # which a reader from a pipe meets after it has written the files.)
    assert expected_entries(tmp_path) == expected_entries(sample.root)


# --- the header rules on the tree_zip tree ------------------------------------------------------


@pytest.fixture(scope="module")
def tree_zip(sample: Site) -> Callable[[str], tuple[bytes, Parsed]]:
    """Return a getter of the whole tree as a ZIP (by ?compression=), fetched once each."""
    got: dict[str, tuple[bytes, Parsed]] = {}

    def get(compression: str) -> tuple[bytes, Parsed]:
        if compression not in got:
            r = httpx.get(f"{sample.url}{ROOT_ZIP}&compression={compression}", timeout=SLOW)
            assert r.status_code == 200
            got[compression] = r.content, parse(r.content)
        return got[compression]
    return get


@pytest.mark.parametrize("compression", ["store", "auto"])
def test_stored_entries_have_crc_and_sizes_in_the_local_header_and_no_descriptor(
        tree_zip: Callable[[str], tuple[bytes, Parsed]], sample: Site,
        compression: str) -> None:
    data, z = tree_zip(compression)
    root = sample.root
    stored = [(c, loc) for c, loc in zip(z.central, z.local, strict=True) if c.method == 0]
    assert len(stored) >= 3  # jpg, png and folders are stored even under auto
    for cen, loc in stored:
        assert loc.flags & 0x08 == 0 and cen.flags & 0x08 == 0, cen.name
        assert (loc.crc, loc.csize, loc.usize) == (cen.crc, cen.csize, cen.usize), cen.name
        start = loc.start + loc.length
        body = data[start:start + cen.usize]
        if not cen.name.endswith("/"):
            assert body == (root / cen.name).read_bytes()
        assert zlib.crc32(body) == cen.crc
        # What follows the data is the next record, never a descriptor (PK\x07\x08).
        assert data[start + cen.usize:start + cen.usize + 4] in (b"PK\x03\x04", b"PK\x01\x02")


def test_stored_zip_entries_are_back_to_back(tree_zip: Callable[[str], tuple[bytes, Parsed]]
                                             ) -> None:
    check_back_to_back(tree_zip("store")[1])


@pytest.mark.parametrize("compression", ["store", "auto", "deflate"])
def test_every_entry_has_its_utc_mtime_in_an_extended_timestamp(
        tree_zip: Callable[[str], tuple[bytes, Parsed]], compression: str) -> None:
    z = tree_zip(compression)[1]
    t = time.gmtime(MTIME)
    dos = ((t.tm_year - 1980) << 9 | t.tm_mon << 5 | t.tm_mday,
           t.tm_hour << 11 | t.tm_min << 5 | t.tm_sec // 2)
    for rec in z.central + z.local:
        assert rec.extra[TIME_ID] == struct.pack("<BI", 1, MTIME), rec.name
        assert rec.dos == dos, rec.name  # the DOS time is UTC too: the same bytes everywhere


@pytest.mark.parametrize("compression", ["store", "auto", "deflate"])
def test_small_archive_has_no_zip64_anywhere(tree_zip: Callable[[str], tuple[bytes, Parsed]],
                                             compression: str) -> None:
    data, z = tree_zip(compression)
    assert z.end64 is None
    assert b"PK\x06\x06" not in data[z.cd_start:] and b"PK\x06\x07" not in data[z.cd_start:]
    for rec in z.central + z.local:
        assert ZIP64_ID not in rec.extra and rec.needed == 20, rec.name


@pytest.mark.parametrize("compression", ["store", "auto", "deflate"])
def test_non_ascii_names_carry_a_unicode_path_field_in_both_headers(
        tree_zip: Callable[[str], tuple[bytes, Parsed]], compression: str) -> None:
    z = tree_zip(compression)[1]
    non_ascii = [rec for rec in z.central + z.local if not rec.name.isascii()]
    assert len(non_ascii) == 2  # the sample tree's "photos/café über.txt", in both headers
    for rec in z.central + z.local:
        block = b"".join(struct.pack("<HH", k, len(v)) + v for k, v in rec.extra.items())
        field = parse_unicode_path(block)
        if rec.name.isascii():
            assert field is None and rec.flags & FLAG_UTF8 == 0, rec.name
        else:
            assert rec.flags & FLAG_UTF8, rec.name
            assert field == UnicodePath(1, zlib.crc32(rec.name.encode()), rec.name)


@pytest.mark.parametrize("compression", ["store", "deflate"])
def test_zip_with_unicode_path_fields_passes_unzip_7z_and_bsdtar(
        sample: Site, tmp_path: Path, compression: str) -> None:
    r = httpx.get(f"{sample.url}{ROOT_ZIP}&compression={compression}", timeout=SLOW)
    assert r.status_code == 200
    if compression == "store":
        assert int(r.headers["content-length"]) == len(r.content)
    path = tmp_path / "tree.zip"
    path.write_bytes(r.content)
    name = "photos/caf\u00e9 \u00fcber.txt"
    assert "No errors detected" in run("unzip", "-t", str(path))
    assert "Everything is Ok" in run("7z", "t", str(path))
    assert name in run("bsdtar", "-tf", str(path)).splitlines()
    with zipfile.ZipFile(path) as zf:
        assert zf.read(name) == (sample.root / name).read_bytes()



# --- ZIP64 boundaries: archives written in process, read by four readers ----------------------


ZERO = bytes(4 << 20)


def pack(root: Path, paths: list[str], out: Path, crcs: dict[str, int] | None = None) -> int:
    """Write the stored ZIP of paths under root to out, leaving runs of zeros as holes; return its length.

    ``crcs`` (file name -> CRC-32) warm the CRC cache first, as an earlier
    download would: each file is then read once, and checked against it.
    """
    service = Service(Settings(root=root, crc_cache=None, chunk_size=len(ZERO)))
    for name, crc in (crcs or {}).items():
        service.cache.put(service.root.stat(tuple(name.split("/"))), crc)
    try:
        plan = service.archive(paths, "zip", compression="store")
        assert plan.total is not None
        pos = 0
        with out.open("wb") as f:
            for chunk in service.encoder.body(plan):
                if len(chunk) == len(ZERO) and chunk == ZERO:
                    f.seek(len(chunk), os.SEEK_CUR)
                else:
                    f.write(chunk)
                pos += len(chunk)
            f.truncate(pos)
        assert pos == plan.total
        return pos
    finally:
        service.close()


def parse_file(path: Path) -> Parsed:
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return parse(m)


@dataclass
class Boundary:
    path: Path
    sizes: dict[str, int]  # every entry: its size
    small: list[str]  # entries a reader can check quickly (all of them but the big files)


MANY_FILES = 65_533  # with their folder: 65,534 entries


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Boundary]:
    """Return a getter of the archive with that many entries (65,534 .. 65,536), built once each."""
    base = tmp_path_factory.mktemp("many")
    root = base / "root"
    (root / "many").mkdir(parents=True)
    for i in range(MANY_FILES):
        (root / "many" / f"f{i:05d}").touch()
    (root / "x1").write_bytes(b"one\n")
    (root / "x2").write_bytes(b"two\n")
    built: dict[int, Boundary] = {}

    def get(count: int) -> Boundary:
        if count not in built:
            paths = ["many", "x1", "x2"][:count - MANY_FILES]
            sizes = {"many/": 0, **{f"many/f{i:05d}": 0 for i in range(MANY_FILES)}}
            sizes.update({p: 4 for p in paths[1:]})
            out = base / f"{count}.zip"
            pack(root, paths, out)
            built[count] = Boundary(out, sizes, sorted(sizes))
        return built[count]
    return get


# Sorted by name, so each sits where it tests something: the largest size with no ZIP64 at
# offset 0; a small file pushed past 4 GiB (offset-only ZIP64); exactly 0xFFFFFFFF bytes and
# right after it a small file (where unzip 6.0 misread the next ZIP64 field); 4 GiB + 1.
BIG_FILES = {"0-first.txt": None, "a-fffffffe.bin": 2**32 - 2, "b-after.txt": None,
             "c-ffffffff.bin": 2**32 - 1, "c-tail.txt": None, "d-100000001.bin": 2**32 + 1,
             "e-last.txt": None}


def crc_of_zeros(n: int, crc: int) -> int:
    """Given a length and a running CRC-32, return it continued over n zero bytes."""
    for _ in range(n // len(ZERO)):
        crc = crc32(ZERO, crc)
    return crc32(ZERO[:n % len(ZERO)], crc)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Boundary:
    """Build the size-boundary archive: sparse files with random bytes at both ends."""
    base = tmp_path_factory.mktemp("big")
    root = base / "root"
    root.mkdir()
    sizes, crcs = {}, {}
    for name, size in BIG_FILES.items():
        path = root / name
        if size is None:
            path.write_bytes(f"small file {name}\n".encode())
        else:
            head, tail = os.urandom(4096), os.urandom(4096)
            with path.open("wb") as f:
                f.truncate(size)  # sparse: no disk, no time
                os.pwrite(f.fileno(), head, 0)
                os.pwrite(f.fileno(), tail, size - 4096)
            crcs[name] = crc32(tail, crc_of_zeros(size - 8192, crc32(head)))
        sizes[name] = path.stat().st_size
    out = base / "big.zip"
    pack(root, ["."], out, crcs)
    return Boundary(out, sizes, [n for n, s in BIG_FILES.items() if s is None])


COUNTS = [65_534, 65_535, 65_536]


@pytest.mark.parametrize("count", COUNTS)
def test_entry_count_boundary_follows_the_zip64_rule(many: Callable[[int], Boundary],
                                                      count: int) -> None:
    z = parse_file(many(count).path)
    assert len(z.central) == count
    assert (z.end64 is not None) == (count >= COUNT_LIMIT)
    check_zip64_rule(z)
    check_back_to_back(z)


def test_size_boundary_follows_the_zip64_rule(big: Boundary) -> None:
    z = parse_file(big.path)
    assert {c.name: c.real()[0] for c in z.central} == big.sizes
    assert z.end64 is not None and z.cd_start > LIMIT
    far = [c.name for c in z.central if c.real()[2] >= LIMIT]
    assert far == ["b-after.txt", "c-ffffffff.bin", "c-tail.txt", "d-100000001.bin",
                   "e-last.txt"]
    check_zip64_rule(z)
    check_back_to_back(z)


# Each reader: list the archive (name -> size) and test the named entries (all when None).


def read_zipfile(path: Path, only: list[str] | None) -> dict[str, int]:
    with zipfile.ZipFile(path) as z:
        if only is None:
            assert z.testzip() is None  # every CRC, every byte
        else:
            for name in only:
                with z.open(name) as f:
                    f.read()  # zipfile checks the CRC at the end
        return {i.filename: i.file_size for i in z.infolist()}


def read_unzip(path: Path, only: list[str] | None) -> dict[str, int]:
    tested = run("unzip", "-t", str(path), *(only or []), timeout=SLOW)
    assert "No errors detected" in tested
    listing = run("unzip", "-l", str(path), timeout=SLOW).splitlines()
    rows = listing[listing.index(next(x for x in listing if x.startswith("---"))) + 1:-2]
    return {parts[3]: int(parts[0]) for parts in (row.split(None, 3) for row in rows)}


def read_7z(path: Path, only: list[str] | None) -> dict[str, int]:
    assert "Everything is Ok" in run("7z", "t", str(path), *(only or []), timeout=SLOW)
    out = {}
    listing = run("7z", "l", "-slt", str(path), timeout=SLOW)
    for block in listing.split("----------", 1)[1].split("\n\n"):
        fields = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        if "Path" in fields:
            slash = "/" if fields.get("Folder") == "+" else ""
            out[fields["Path"] + slash] = int(fields["Size"])
    return out


def read_bsdtar(path: Path, only: list[str] | None) -> dict[str, int]:
    if only is not None:  # read (and CRC-check) the named entries, found by their offsets
        data = run("bsdtar", "-xOf", str(path), *only, timeout=SLOW)
        assert data == "".join(f"small file {n}\n" for n in only)
    out = {}
    for row in run("bsdtar", "-tvf", str(path), timeout=SLOW).splitlines():
        parts = row.split(None, 8)
        out[parts[8]] = int(parts[4])
    return out


READERS = {"zipfile": read_zipfile, "unzip": read_unzip, "7z": read_7z, "bsdtar": read_bsdtar}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("count", COUNTS)
def test_entry_count_boundary_archive_is_read_whole(many: Callable[[int], Boundary],
                                                     count: int, reader: str) -> None:
    archive = many(count)
    assert READERS[reader](archive.path, None) == archive.sizes


@pytest.mark.parametrize("reader", READERS)
def test_size_boundary_archive_is_listed_and_its_small_entries_read(big: Boundary,
                                                                    reader: str) -> None:
    # Full CRC checks of the 12 GiB are left to zipfile below: the others run at
    # 0.1 to 1 GiB/s here, and what they must get right is finding each entry.
    assert READERS[reader](big.path, big.small) == big.sizes


def test_size_boundary_archive_passes_zipfiles_crc_check_of_every_byte(big: Boundary) -> None:
    assert read_zipfile(big.path, None) == big.sizes
