"""A manifest with a password, end to end on a real server: a sealed link that holds no password,
an AES-256 ZIP that 7z and pyzipper open byte-identical with the manifest's names, resumed by curl."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import httpx
import pytest
import pyzipper  # type: ignore[import-untyped]

from tests.helpers import Server, build_tree, need_tool, run

PASSWORD = "Tr0ub4dor&3-zipserve"
TOKEN, SECRET = "manifest-token", "manifest-secret"


@pytest.fixture(scope="module")
def site(serve, tmp_path_factory: pytest.TempPathFactory) -> tuple[Server, Path]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("sealed")
    root = build_tree(tmp / "root")
    return serve(root, "--token", TOKEN, "--secret", SECRET, "--records",
                 str(tmp / "records.sqlite3")), root


def manifest(root: Path, **top: object) -> tuple[dict[str, object], dict[str, bytes]]:
    """Return a manifest of three files under new names, and what each name must hold."""
    picks = {"Read me.txt": "docs/readme.txt", "Notes/long.txt": "docs/notes/long.txt",
             "Notes/empty.txt": "docs/notes/empty.txt"}
    entries = [{"source": src, "name": name} for name, src in picks.items()]
    expected = {name: (root / src).read_bytes() for name, src in picks.items()}
    return {"name": "Sealed", "entries": entries, **top}, expected


def post(server: Server, body: dict[str, object]) -> httpx.Response:
    return httpx.post(server.url + "/manifest", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.mark.parametrize("compression", ["store", "auto"])
def test_a_password_manifest_downloads_an_aes_zip_7z_and_pyzipper_open(
        site: tuple[Server, Path], compression: str, tmp_path: Path) -> None:
    server, root = site
    body, expected = manifest(root, password=PASSWORD, compression=compression)
    r = post(server, body)
    assert r.status_code == 201, r.text
    link = r.json()["url"]
    assert "/manifest/sealed/" in link and PASSWORD not in link and "Tr0ub4dor" not in link
    assert (r.json()["size"] is not None) == (compression == "store")  # stored+encrypted stays sized
    got = httpx.get(link, timeout=30)  # signed: no token needed
    assert got.status_code == 200
    with pyzipper.AESZipFile(io.BytesIO(got.content)) as z:
        assert z.namelist() == list(expected)
        assert all(i.flag_bits & 1 for i in z.infolist() if i.file_size)  # encrypted
        z.setpassword(PASSWORD.encode())
        assert {n: z.read(n) for n in z.namelist()} == expected
    need_tool("7z")
    path = tmp_path / "sealed.zip"
    path.write_bytes(got.content)
    out = tmp_path / "out"
    run("7z", "x", "-y", f"-p{PASSWORD}", f"-o{out}", path)
    assert {n: (out / n).read_bytes() for n in expected} == expected
    wrong = subprocess.run(["7z", "t", "-pwrong", str(path)], capture_output=True, text=True)
    assert wrong.returncode != 0
    assert PASSWORD not in server.log_text()
    # The record store keeps the manifest encrypted: its files hold no password either.
    kept = list(server.log.parent.parent.rglob("sealed*/records.sqlite3*"))
    assert kept and all(PASSWORD.encode() not in f.read_bytes() for f in kept)


def test_a_stored_sealed_link_resumes_with_curl_byte_identical(site: tuple[Server, Path],
                                                               tmp_path: Path) -> None:
    need_tool("curl")
    server, root = site
    body, _ = manifest(root, password=PASSWORD, compression="store")
    link = post(server, body).json()["url"]
    whole = httpx.get(link, timeout=30).content
    assert whole == httpx.get(link, timeout=30).content  # derived salts: the same bytes again
    out = tmp_path / "part.zip"
    out.write_bytes(whole[: len(whole) // 3])
    run("curl", "-sS", "-f", "-C", "-", "-o", out, link)
    assert out.read_bytes() == whole


def test_a_password_in_a_link_or_without_a_secret_is_refused(site: tuple[Server, Path],
                                                             serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, root = site
    body, _ = manifest(root, password=PASSWORD)
    link = post(server, body).json()["url"]
    # A sealed link without its signature is refused like any other.
    assert httpx.get(link.split("?", 1)[0], timeout=30).status_code == 401
    open_server = serve(root)  # no secret: nothing to seal the password with
    r = httpx.post(open_server.url + "/manifest", json=body, timeout=30)
    assert r.status_code == 400 and "secret" in r.json()["error"]["message"]
