"""The allowlist on a real server: manifests naming URLs outside --allow-url are refused with no
request made to the origin (counted in nginx's access log), and an allowed URL whose answer
redirects elsewhere is refused with no request made there.

The origin listens on 127.0.0.1 and 127.0.0.2; the server allows only http://127.0.0.1:PORT/ok/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Serve, Server
from tests.manifest_tools import fetch, link, manifest_of, members, post, write
from tests.origin import Origin, start_origin, stop_origin

MTIME = 1_700_000_000
DATA = b"allowed bytes\n" * 100
REDIRECTS = {
    "/ok/to-127.0.0.2": "http://127.0.0.2:{port2}/ok/a.bin",
    "/ok/to-outside": "http://127.0.0.1:{port}/secret/a.bin",
    "/ok/to-ipv6": "http://[::1]:{port}/ok/a.bin",
    "/ok/to-decimal": "http://2130706433:{port}/ok/a.bin",
    "/ok/to-userinfo": "http://127.0.0.1:{port}@127.0.0.2:{port2}/ok/a.bin",
    "/ok/to-metadata": "http://169.254.169.254/latest/meta-data/",
}
# (URL, status): 400 for a URL zipserve will not parse (numeric hosts other than dotted quads,
# userinfo, encoded slashes, backslashes, other schemes); 403 for one outside every prefix or
# resolving to a non-public address. Written with {port} (the allowed server's) and {port2}
# (127.0.0.2's): none may be fetched.
REFUSED = [
    ("http://127.0.0.2:{port2}/ok/a.bin", 403),
    ("http://127.0.0.2:{port}/ok/a.bin", 403),
    ("http://[::1]:{port}/ok/a.bin", 403),
    ("http://[::ffff:127.0.0.2]:{port2}/ok/a.bin", 403),
    ("http://2130706433:{port}/ok/a.bin", 400),
    ("http://0x7f000001:{port}/ok/a.bin", 400),
    ("http://0177.0.0.1:{port}/ok/a.bin", 400),
    ("http://127.1:{port}/ok/a.bin", 400),
    ("http://127.0.0.1:{port}@127.0.0.2:{port2}/ok/a.bin", 400),
    ("http://127.0.0.1:{port}%40127.0.0.2:{port2}/ok/a.bin", 400),
    ("http://evil@127.0.0.1:{port}/ok/a.bin", 400),
    ("http://127.0.0.1:{port}/ok/../secret/a.bin", 403),
    ("http://127.0.0.1:{port}/ok/%2e%2e/secret/a.bin", 403),
    ("http://127.0.0.1:{port}/ok/%2F..%2Fsecret/a.bin", 400),
    ("http://127.0.0.1:{port}/ok\\..\\secret/a.bin", 400),
    ("http://127.0.0.1:{port}/okay/a.bin", 403),
    ("http://127.0.0.1:{port}/secret/a.bin", 403),
    ("http://127.0.0.1:{port2}/ok/a.bin", 403),
    ("https://127.0.0.1:{port}/ok/a.bin", 403),
    ("http://localhost:{port}/ok/a.bin", 403),
    ("http://169.254.169.254/latest/meta-data/", 403),
    ("file:///etc/passwd", 400),
    ("ftp://127.0.0.1:{port}/ok/a.bin", 400),
]


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    served = start_origin(tmp_path_factory.mktemp("origin"), REDIRECTS)
    for name in ("ok/a.bin", "secret/a.bin", "okay/a.bin"):
        write(served.www / name, DATA, MTIME)
    yield served
    stop_origin(served)


@pytest.fixture(scope="module")
def server(serve: Serve, origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = tmp_path_factory.mktemp("sroot")
    write(root / "local.txt", b"local\n", MTIME)
    return serve(root, "--allow-url", f"http://127.0.0.1:{origin.port}/ok/")


def entries_with(url: str) -> list[dict[str, object]]:
    return [{"source": "local.txt", "name": "local.txt"}, {"source": url, "name": "fetched.bin"}]


def test_the_allowed_prefix_is_fetched(server: Server, origin: Origin) -> None:
    answer = link(server, manifest_of(entries_with(f"{origin.base}/ok/a.bin"), "tar"))
    assert members("tar", fetch(answer["url"]).content)[1].data == DATA


@pytest.mark.parametrize("missing", ["fail", "skip"])
@pytest.mark.parametrize(("template", "status"), REFUSED)
def test_urls_outside_the_allowlist_are_refused_unfetched(server: Server, origin: Origin,
                                                          template: str, status: int,
                                                          missing: str) -> None:
    url = template.format(port=origin.port, port2=origin.port2)
    before = len(origin.settled())
    r = post(server, manifest_of(entries_with(url), "zip", "store", missing=missing))
    assert r.status_code == status, r.text
    assert "entries[1]" in r.text
    assert origin.settled()[before:] == []


@pytest.mark.parametrize("missing", ["fail", "skip"])
@pytest.mark.parametrize("path", sorted(REDIRECTS))
def test_an_allowed_url_redirecting_elsewhere_is_refused(server: Server, origin: Origin,
                                                         path: str, missing: str) -> None:
    before = len(origin.settled())
    r = post(server, manifest_of(entries_with(f"{origin.base}{path}"), "zip", "store",
                                 missing=missing))
    # 400: a Location zipserve will not parse; 403: one outside the prefix or not public.
    assert r.status_code == (400 if path in ("/ok/to-decimal", "/ok/to-userinfo") else 403), r.text
    made = origin.settled()[before:]
    assert made and all(line.split(" ")[2] == path for line in made), made
    assert origin.requests("127.0.0.2") == []
