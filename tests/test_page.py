"""The page's HTML, in process: listing, breadcrumbs, sizes, escaping, links, the form, errors.

The last tests ask a real server on each source (`served`: local disk and S3) for a listing.
"""

from __future__ import annotations

import io
import tarfile
import time
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from zipserve.core.signing import sign_url
from zipserve.http.app import create_app
from zipserve.http.page import human_size
from zipserve.settings import Settings

ODD = {
    "<img src=x onerror=alert(1)>.txt": b"img probe\n",
    "<script>alert(2).txt": b"script probe\n",
    'a"b.txt': b"quote\n",
    "it's.txt": b"apostrophe\n",
    "hash #1 & what?.txt": b"hash and question mark\n",
    "100% \u00fcber.txt": b"percent and umlaut\n",
}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends
VOID = {"input", "meta", "link", "br", "img", "use", "path"}
SECRET = "page-secret"


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    inside: tuple[str, ...]  # the tags and classes around it, outermost first
    text: str = ""


class Doc(HTMLParser):
    """A parsed page: every element with its attributes, text and surroundings."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.stack: list[Element] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        around = tuple(f"{e.tag}.{e.attrs.get('class') or ''}" for e in self.stack)
        element = Element(tag, dict(attrs), around)
        self.elements.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        if any(e.tag == tag for e in self.stack):  # `<use/>` ends nothing that is open
            while self.stack.pop().tag != tag:
                pass

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data

    def find(self, tag: str, within: str = "", **attrs: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag
                and (not within or any(within in a for a in e.inside))
                and all(e.attrs.get(k.rstrip("_").replace("_", "-")) == v
                        for k, v in attrs.items())]


def load_page(client: TestClient, url: str) -> Doc:
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    return Doc(r.text)


def rows(doc: Doc) -> list[tuple[str, str]]:
    """Given a listing, return (name, href) of its entries, in order."""
    return [(a.text, str(a.attrs["href"])) for a in doc.find("a", within="td.name")]


def crumbs(doc: Doc) -> list[tuple[str, str | None]]:
    return [(li.text.strip(), next((a.attrs["href"] for a in doc.find("a", within="ol.crumbs")
                                    if a.text == li.text.strip()), None))
            for li in doc.find("li", within="ol.crumbs")]


@pytest.fixture
def odd(tree: Path) -> Path:
    """A folder of names that must render as text and survive the URL round trip."""
    folder = tree / "odd"
    folder.mkdir()
    for name, data in ODD.items():
        (folder / name).write_bytes(data)
    return folder


def test_root_page_is_html_titled_home(client):
    doc = load_page(client, "/")
    assert [h.text for h in doc.find("h1")] == ["Home"]
    assert doc.find("title")[0].text == "Home · zipserve"


def test_browse_page_lists_the_folder(client):
    assert [name for name, _ in rows(load_page(client, "/browse/docs/notes"))] == \
        ["empty.txt", "long.txt"]


def test_folders_come_first_then_files(client):
    assert [name for name, _ in rows(load_page(client, "/"))] == \
        ["a" * 120, "docs", "empty-folder", "photos", "top.txt"]


def test_breadcrumbs_link_every_folder_above(client):
    doc = load_page(client, "/browse/docs/notes")
    assert crumbs(doc) == [("Home", "/"), ("docs", "/browse/docs"), ("notes", None)]
    assert [s.text for s in doc.find("span", within="ol.crumbs", aria_current="page")] == \
        ["notes"]


def test_root_breadcrumb_is_only_home(client):
    assert crumbs(load_page(client, "/")) == [("Home", None)]


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (1000, "1.0 KB"), (1536, "1.5 KB"),
    (9_949, "9.9 KB"), (9_950, "10 KB"), (200_000, "200 KB"), (999_499, "999 KB"),
    (999_500, "1.0 MB"), (5 * 10**9, "5.0 GB"), (1_234 * 10**12, "1.2 PB"), (10**21, "1000 EB"),
])
def test_human_size(size, text):
    assert human_size(size) == text


def test_listing_shows_human_sizes_with_exact_bytes_on_hover(client):
    doc = load_page(client, "/browse/photos/2024")
    cells = doc.find("td", class_="size")
    assert [(c.text, c.attrs.get("title")) for c in cells] == \
        [("200 KB", "200,000 bytes"), ("50 KB", "50,000 bytes")]


def test_listing_shows_modified_dates_in_utc(client):
    times = load_page(client, "/browse/docs").find("time")
    assert {(t.text, t.attrs["datetime"]) for t in times} == \
        {("2023-11-14 22:13", "2023-11-14T22:13:20Z")}


def test_folders_show_no_size(client):
    doc = load_page(client, "/browse/docs")
    assert doc.find("td", class_="size")[0].text == "—"
    assert doc.find("input", value="docs/notes")[0].attrs["data-size"] == "0"


def test_empty_folder_says_so(client):
    doc = load_page(client, "/browse/empty-folder")
    assert rows(doc) == []
    assert doc.find("td", class_="empty")[0].text == "This folder is empty."


@pytest.mark.parametrize("name", sorted(ODD))
def test_names_render_as_text(client, odd, name):
    r = client.get("/browse/odd")
    if any(c in name for c in "<>\"'&"):
        assert name not in r.text  # never raw: escaped in text and in attributes
    doc = Doc(r.text)
    assert name in [text for text, _ in rows(doc)]
    assert f"odd/{name}" in [i.attrs["value"] for i in doc.find("input", name="path")]
    assert not doc.find("img")
    assert [s.attrs.get("src") for s in doc.find("script")] == \
        [doc.find("script")[0].attrs["src"]]  # only zipserve.js


@pytest.mark.parametrize(("url", "name", "href"), [
    ("/browse/photos", "caf\u00e9 \u00fcber.txt", "/files/photos/caf%C3%A9%20%C3%BCber.txt"),
    ("/browse/docs", "notes", "/browse/docs/notes"),
    ("/browse/odd", "hash #1 & what?.txt", "/files/odd/hash%20%231%20%26%20what%3F.txt"),
    ("/browse/odd", "100% \u00fcber.txt", "/files/odd/100%25%20%C3%BCber.txt"),
    ("/browse/odd", 'a"b.txt', "/files/odd/a%22b.txt"),
    ("/browse/odd", "<script>alert(2).txt", "/files/odd/%3Cscript%3Ealert%282%29.txt"),
])
def test_links_are_percent_encoded_per_segment(client, odd, url, name, href):
    assert dict(rows(load_page(client, url)))[name] == href


@pytest.mark.parametrize("url", ["/", "/browse/odd", "/browse/photos", "/browse/docs/notes"])
def test_every_link_on_the_page_answers(client, odd, url):
    doc = load_page(client, url)
    hrefs = [str(a.attrs["href"]) for a in doc.find("a")]
    hrefs += [str(e.attrs.get("href") or e.attrs.get("src")) for e in doc.find("link") +
              doc.find("script")]
    local = [h for h in hrefs if h.startswith("/")]
    assert local
    assert {h: client.get(h).status_code for h in local} == {h: 200 for h in local}


def test_odd_file_links_serve_their_own_bytes(client, odd):
    served = {name: client.get(href).content for name, href in rows(load_page(client, "/browse/odd"))}
    assert served == ODD


def test_page_uses_no_external_assets(client):
    doc = load_page(client, "/browse/docs")
    urls = [e.attrs.get("href") or e.attrs.get("src") for e in doc.elements
            if e.tag in ("link", "script", "img", "a")]
    assert urls and all(u.startswith(("/", "#", "data:")) and not u.startswith("//")
                        for u in urls if u)
    assert {e.attrs["href"].split("?")[0] for e in doc.find("link", rel="stylesheet")} == \
        {"/static/zipserve.css"}
    assert {e.attrs["src"].split("?")[0] for e in doc.find("script")} == {"/static/zipserve.js"}


@pytest.mark.parametrize(("path", "ctype"), [("zipserve.css", "text/css"),
                                              ("zipserve.js", "text/javascript")])
def test_static_assets_are_served_by_zipserve(client, path, ctype):
    r = client.get("/static/" + path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(ctype)
    assert len(r.content) > 500


def test_page_forbids_inline_and_foreign_scripts(client):
    csp = client.get("/").headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_head_of_the_page_answers_like_get(client):
    r = client.head("/browse/docs")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.content == b""


def test_form_posts_the_ticked_paths_to_archive(client):
    doc = load_page(client, "/browse/docs")
    (form,) = doc.find("form")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", "/archive")
    assert [i.attrs["value"] for i in doc.find("input", name="path", type="checkbox")] == \
        ["docs/notes", "docs/readme.txt", "docs/script.sh"]


def test_buttons_submit_zip_or_tar_gz(client):
    buttons = load_page(client, "/").find("button", type="submit")
    assert [(b.text, b.attrs["name"], b.attrs["value"]) for b in buttons] == \
        [("Download ZIP", "format", "zip"), ("Download .tar.gz", "format", "tar.gz")]


def test_zip_is_stored_unless_compressed_is_chosen(client):
    doc = load_page(client, "/")
    options = doc.find("option", within="select.")
    assert doc.find("select")[0].attrs["name"] == "compression"
    assert [(o.attrs["value"], "selected" in o.attrs) for o in options] == \
        [("store", True), ("auto", False)]


def test_select_all_waits_for_javascript(client):
    (box,) = load_page(client, "/").find("input", id="select-all")
    assert "hidden" in box.attrs


def form_post(client: TestClient, url: str, ticked: list[str], button: str) -> dict[str, object]:
    """Given a page, post its form as a browser without JavaScript would; return the answers."""
    doc = load_page(client, url)
    (form,) = doc.find("form")
    values = [str(i.attrs["value"]) for i in doc.find("input", name="path")]
    assert set(ticked) <= set(values)
    chosen = next(o for o in doc.find("option") if "selected" in o.attrs)
    (pressed,) = [b for b in doc.find("button") if b.text == button]
    data = {"path": ticked, "compression": chosen.attrs["value"],
            str(pressed.attrs["name"]): pressed.attrs["value"]}
    posted = client.post(str(form.attrs["action"]), data=data, follow_redirects=False)
    return {"post": posted, "get": client.get(posted.headers["location"])}


def test_form_without_javascript_downloads_a_sized_zip(client, tree):
    answers = form_post(client, "/browse/docs", ["docs/readme.txt", "docs/notes"], "Download ZIP")
    assert answers["post"].status_code == 303
    assert answers["post"].headers["location"].startswith("/archive?s=")
    got = answers["get"]
    assert got.status_code == 200
    assert int(got.headers["content-length"]) == len(got.content)
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        assert z.namelist() == ["notes/", "notes/empty.txt", "notes/long.txt", "readme.txt"]
        assert z.read("readme.txt") == (tree / "docs" / "readme.txt").read_bytes()


def test_form_without_javascript_downloads_a_tar_gz(client, tree):
    answers = form_post(client, "/browse/docs", ["docs/readme.txt", "docs/notes"],
                        "Download .tar.gz")
    got = answers["get"]
    assert got.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(got.content), mode="r:gz") as t:
        assert sorted(t.getnames()) == ["notes", "notes/empty.txt", "notes/long.txt",
                                        "readme.txt"]


def test_form_carries_odd_names_into_the_archive(client, odd):
    answers = form_post(client, "/browse/odd", [f"odd/{n}" for n in ODD], "Download ZIP")
    with zipfile.ZipFile(io.BytesIO(answers["get"].content)) as z:
        assert {n: z.read(n) for n in z.namelist()} == ODD


def test_missing_folder_answers_an_html_page_to_browsers(client):
    r = client.get("/browse/docs/nope", headers=HTML)
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    doc = Doc(r.text)
    assert doc.find("h1")[0].text == "404 · Not Found"
    assert doc.find("p", class_="message")[0].text == "no such file or folder: docs/nope"


def test_missing_folder_answers_json_to_scripts(client):
    r = client.get("/browse/docs/nope")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "path": "docs/nope",
                                  "message": "no such file or folder: docs/nope"}}


def test_error_page_escapes_the_path(client):
    r = client.get("/browse/<img src=x onerror=alert(1)>", headers=HTML)
    assert r.status_code == 404
    assert "<img" not in r.text
    assert Doc(r.text).find("p", class_="message")[0].text == \
        "no such file or folder: <img src=x onerror=alert(1)>"


def test_browsing_a_file_is_refused(client):
    r = client.get("/browse/top.txt", headers=HTML)
    assert r.status_code == 400
    assert "top.txt is a file" in r.text


@pytest.mark.parametrize("url", ["/browse/..%2F..", "/browse/%2e%2e/", "/browse//etc",
                                 "/browse/docs/..%2F..%2F"])
def test_paths_out_of_the_root_are_refused(client, url):
    r = client.get(url, headers=HTML)
    assert r.status_code == 403
    assert not Doc(r.text).find("table")


@pytest.fixture
def signed_client(tree: Path) -> TestClient:
    """A server that only lets signed links in."""
    with TestClient(create_app(Settings(root=tree, crc_cache=None, secret=SECRET)),
                    follow_redirects=False) as c:
        yield c


def signed_page(client: TestClient, path: str) -> Doc:
    url = sign_url(SECRET, path, [], expires=int(time.time()) + 600)
    return load_page(client, url)


def test_signed_page_hands_out_signed_links_that_work(signed_client):
    doc = signed_page(signed_client, "/browse/docs")
    hrefs = [str(a.attrs["href"]) for a in doc.find("a", within="td.name")]
    hrefs += [str(doc.find("link", rel="stylesheet")[0].attrs["href"]),
              str(doc.find("script")[0].attrs["src"])]
    assert all("sig=" in h for h in hrefs)
    assert {urlsplit(h).path: signed_client.get(h).status_code for h in hrefs} == {
        urlsplit(h).path: 200 for h in hrefs}


def test_signed_page_form_downloads_with_a_signed_link(signed_client):
    doc = signed_page(signed_client, "/browse/docs")
    action = str(doc.find("form")[0].attrs["action"])
    posted = signed_client.post(action, data={"path": ["docs/readme.txt"], "format": "zip"})
    assert posted.status_code == 303
    got = signed_client.get(posted.headers["location"])
    assert got.status_code == 200
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        assert z.namelist() == ["readme.txt"]


def test_signed_page_links_nothing_above_its_folder(signed_client):
    doc = signed_page(signed_client, "/browse/docs/notes")
    assert crumbs(doc) == [("Home", None), ("docs", None), ("notes", None)]


def test_signed_subfolder_keeps_the_grant_of_its_page(signed_client):
    doc = signed_page(signed_client, "/browse/docs")
    notes = signed_client.get(dict(rows(doc))["notes"])
    back = dict(crumbs(Doc(notes.text)))["docs"]
    assert back is not None and signed_client.get(back).status_code == 200


# --- a listing from each source ----------------------------------------------------------------


def test_page_lists_the_root(served_http: httpx.Client) -> None:
    r = served_http.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 200
    for name in ("docs", "photos", "empty-folder", "top.txt"):
        assert f">{name}<" in r.text, name


def test_api_lists_a_folder(served_http: httpx.Client) -> None:
    r = served_http.get("/api/list/docs")
    assert r.status_code == 200
    entries = {e["name"]: e for e in r.json()["entries"]}
    assert set(entries) == {"notes", "readme.txt", "script.sh"}
    assert entries["readme.txt"]["size"] == 750
    assert entries["notes"]["kind"] == "dir"


@pytest.mark.parametrize(("headers", "windows"), [
    ({"Sec-CH-UA-Platform": '"Windows"'}, True),
    ({"Sec-CH-UA-Platform": '"macOS"', "User-Agent": "Mozilla/5.0 (Windows NT 10.0)"}, False),
    ({"Sec-CH-UA-Platform": '"Linux"'}, False),
    ({"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/120.0"}, True),
    ({"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}, False),
    ({"User-Agent": "Wget/1.21"}, False),
    ({}, False),
])
def test_windows_safe_names_are_ticked_for_windows_browsers(tmp_path: Path, headers: dict[str, str],
                                                            windows: bool) -> None:
    (tmp_path / "a.txt").write_text("a")
    with TestClient(create_app(Settings(root=tmp_path, crc_cache=None))) as c:
        r = c.get("/", headers={**HTML, **headers})
    box = next(line for line in r.text.splitlines() if 'name="names"' in line)
    assert ('value="windows" checked' in box) == windows
    assert "Sec-CH-UA-Platform" in r.headers["vary"]
