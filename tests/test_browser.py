"""The page in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Nothing here downloads a browser: Playwright is pointed at the system Chromium.
Set ZIPSERVE_SCREENSHOTS=docs to also keep the screenshots (docs/screenshot.png
is made that way).
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Download, Page, sync_playwright

from tests.helpers import ARGS, CHROMIUM, TIMEOUT_MS, Server, build_tree

VIDEO = Path(__file__).resolve().parents[1] / "fixtures" / "videos" / "test-pattern.webm"
# Names a page must show as text; a name cannot hold "/", so the probe is an <img onerror>.
ODD = {
    "<img src=x onerror=alert(1)>.txt": b"img probe\n",
    "<script>alert(2).txt": b"script probe\n",
    'a"b.txt': b"quote\n",
    "hash #1 & what?.txt": b"hash and question mark\n",
    "100% \u00fcber.txt": b"percent and umlaut\n",
}


@pytest.fixture(scope="module")
def site(serve: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> Server:
    """The sample tree plus a video and odd names, served by a real zipserve."""
    root = build_tree(tmp_path_factory.mktemp("browser") / "root")
    (root / "videos").mkdir()
    shutil.copyfile(VIDEO, root / "videos" / "test-pattern.webm")
    (root / "odd").mkdir()
    for name, data in ODD.items():
        (root / "odd" / name).write_bytes(data)
    return serve(root)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=TIMEOUT_MS)
        yield b
        b.close()


@pytest.fixture
def problems() -> list[str]:
    """What the page did that it should not: dialogs, script errors, console errors (CSP, 404)."""
    return []


def open_page(browser: Browser, site: Server, problems: list[str], *,
              javascript: bool = True, width: int = 1280, height: int = 800) -> Iterator[Page]:
    context = browser.new_context(base_url=site.url, java_script_enabled=javascript,
                                  viewport={"width": width, "height": height},
                                  accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()
    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error"
            else None)
    yield page
    context.close()


@pytest.fixture
def page(browser: Browser, site: Server, problems: list[str]) -> Iterator[Page]:
    yield from open_page(browser, site, problems)


@pytest.fixture
def page_without_js(browser: Browser, site: Server, problems: list[str]) -> Iterator[Page]:
    yield from open_page(browser, site, problems, javascript=False)


def row_names(page: Page) -> list[str]:
    return page.locator("tbody td.name a span").all_inner_texts()


def tick(page: Page, *names: str) -> None:
    for name in names:
        page.get_by_label(f"Select {name}", exact=True).check()


def download(page: Page, button: str) -> Download:
    with page.expect_download() as info:
        page.get_by_role("button", name=button, exact=True).click()
    return info.value


def saved(dl: Download, tmp_path: Path) -> bytes:
    target = tmp_path / dl.suggested_filename
    dl.save_as(target)
    return target.read_bytes()


def docs_expected(site: Server) -> dict[str, bytes]:
    """The entries of an archive of docs/readme.txt and docs/notes, named from docs/."""
    docs = site.root / "docs"
    return {"notes/": b"", "notes/empty.txt": b"", "notes/long.txt":
            (docs / "notes" / "long.txt").read_bytes(),
            "readme.txt": (docs / "readme.txt").read_bytes()}


def test_root_page_lists_folders_first_then_files(page: Page) -> None:
    page.goto("/")
    assert row_names(page) == ["a" * 120, "docs", "empty-folder", "odd", "photos", "videos",
                               "top.txt"]


def test_clicking_a_folder_browses_into_it(page: Page) -> None:
    page.goto("/")
    page.get_by_role("link", name="docs", exact=True).click()
    page.get_by_role("link", name="notes", exact=True).click()
    assert page.url.endswith("/browse/docs/notes")
    assert row_names(page) == ["empty.txt", "long.txt"]


def test_breadcrumbs_lead_back_up(page: Page) -> None:
    page.goto("/browse/docs/notes")
    crumbs = page.get_by_role("navigation", name="Breadcrumb")
    assert crumbs.locator("li").all_inner_texts() == ["Home", "docs", "notes"]
    crumbs.get_by_role("link", name="docs").click()
    assert page.url.endswith("/browse/docs")
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Home").click()
    assert urlsplit(page.url).path == "/"


def test_ticked_files_show_their_count_and_total_size(page: Page) -> None:
    page.goto("/browse/photos/2024")
    tick(page, "cat.jpg", "dog.png")
    assert page.locator("#summary").inner_text() == "2 files (250 KB) selected"


def test_ticked_folders_are_counted_apart_from_files(page: Page) -> None:
    page.goto("/browse/photos")
    tick(page, "2024", "caf\u00e9 \u00fcber.txt")
    assert page.locator("#summary").inner_text() == "1 folder, 1 file (15 bytes) selected"


def test_download_buttons_wait_for_a_tick(page: Page) -> None:
    page.goto("/browse/docs")
    zip_button = page.get_by_role("button", name="Download ZIP")
    assert zip_button.is_disabled()
    tick(page, "readme.txt")
    assert zip_button.is_enabled()


def test_select_all_ticks_every_entry_and_clears_them_again(page: Page) -> None:
    page.goto("/browse/docs")
    select_all = page.get_by_label("Select all")
    select_all.check()
    boxes = page.locator('input[name="path"]')
    assert [boxes.nth(i).is_checked() for i in range(boxes.count())] == [True] * 3
    assert page.locator("#summary").inner_text() == "1 folder, 2 files (768 bytes) selected"
    select_all.uncheck()
    assert not any(boxes.nth(i).is_checked() for i in range(boxes.count()))
    assert page.locator("#summary").inner_text() == "Nothing selected"


def test_download_zip_saves_the_ticked_entries(page: Page, site: Server, tmp_path: Path) -> None:
    page.goto("/")
    page.get_by_role("link", name="docs", exact=True).click()
    tick(page, "readme.txt", "notes")
    dl = download(page, "Download ZIP")
    assert dl.suggested_filename == "docs.zip"
    with zipfile.ZipFile(io.BytesIO(saved(dl, tmp_path))) as z:
        assert z.testzip() is None
        assert {n: z.read(n) for n in z.namelist()} == docs_expected(site)
        # The default is store: sized, so the browser shows progress and can resume.
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}


def test_download_tar_gz_saves_the_ticked_entries(page: Page, site: Server,
                                                  tmp_path: Path) -> None:
    page.goto("/")
    page.get_by_role("link", name="docs", exact=True).click()
    tick(page, "readme.txt", "notes")
    dl = download(page, "Download .tar.gz")
    assert dl.suggested_filename == "docs.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(saved(dl, tmp_path)), mode="r:gz") as t:
        got = {m.name + ("/" if m.isdir() else ""): t.extractfile(m).read() if m.isfile() else b""
               for m in t.getmembers()}
    assert got == docs_expected(site)


def test_zip_download_is_a_resumable_get(page: Page, site: Server) -> None:
    page.goto("/browse/docs")
    tick(page, "readme.txt", "notes")
    dl = download(page, "Download ZIP")
    dl.cancel()
    assert "/archive?s=" in dl.url
    head = httpx.head(dl.url)
    assert head.headers["accept-ranges"] == "bytes"
    length = int(head.headers["content-length"])
    tail = httpx.get(dl.url, headers={"Range": f"bytes={length - 22}-"})
    assert tail.status_code == 206
    assert tail.content.startswith(b"PK\x05\x06")  # the end of central directory record
    assert tail.content == httpx.get(dl.url).content[length - 22:]


def test_compressed_choice_deflates_the_zip(page: Page, tmp_path: Path) -> None:
    page.goto("/browse/docs")
    tick(page, "readme.txt", "notes")
    page.get_by_label("ZIP").select_option("auto")
    with zipfile.ZipFile(io.BytesIO(saved(download(page, "Download ZIP"), tmp_path))) as z:
        assert z.getinfo("readme.txt").compress_type == zipfile.ZIP_DEFLATED
        assert z.testzip() is None


def test_form_downloads_without_javascript(page_without_js: Page, site: Server,
                                           tmp_path: Path) -> None:
    page = page_without_js
    page.goto("/browse/docs")
    assert page.get_by_label("Select all").is_hidden()
    tick(page, "readme.txt", "notes")
    with zipfile.ZipFile(io.BytesIO(saved(download(page, "Download ZIP"), tmp_path))) as z:
        assert {n: z.read(n) for n in z.namelist()} == docs_expected(site)


def test_odd_names_show_as_text_and_run_nothing(page: Page, problems: list[str]) -> None:
    page.goto("/browse/odd")
    assert sorted(row_names(page)) == sorted(ODD)
    assert page.locator("tbody img").count() == 0
    assert problems == []


def test_odd_names_link_to_their_files(page: Page) -> None:
    page.goto("/browse/odd")
    links = page.locator("tbody td.name a")
    hrefs = {links.nth(i).inner_text(): links.nth(i).get_attribute("href")
             for i in range(links.count())}
    bodies = {}
    for name, href in hrefs.items():
        response = page.goto(str(href))
        assert response is not None
        bodies[name] = response.body()
    assert bodies == ODD


def test_odd_names_download_under_their_own_names(page: Page, tmp_path: Path) -> None:
    page.goto("/browse/odd")
    page.get_by_label("Select all").check()
    with zipfile.ZipFile(io.BytesIO(saved(download(page, "Download ZIP"), tmp_path))) as z:
        assert {n: z.read(n) for n in z.namelist()} == ODD


def test_clicking_a_video_plays_it_and_seeks(page: Page) -> None:
    page.goto("/browse/videos")
    page.get_by_role("link", name="test-pattern.webm").click()
    assert page.url.endswith("/files/videos/test-pattern.webm")
    state = page.evaluate("""async () => {
        const v = document.querySelector("video");
        const once = (name) => new Promise((done) => v.addEventListener(name, done, {once: true}));
        v.muted = true;
        if (v.readyState < 1) await once("loadedmetadata");
        const seeked = once("seeked");
        v.currentTime = 7;
        await seeked;
        const afterSeek = v.currentTime;
        if (v.readyState < 3) await once("canplay");
        await v.play();
        await once("timeupdate");
        return {src: v.currentSrc, duration: v.duration, afterSeek, now: v.currentTime,
                readyState: v.readyState, seekableEnd: v.seekable.length ? v.seekable.end(0) : 0};
    }""")
    assert state["src"].endswith("/files/videos/test-pattern.webm")
    assert 9.5 < state["duration"] < 10.5
    assert state["afterSeek"] == pytest.approx(7, abs=0.5)  # the media page autoplays
    assert state["now"] >= 7
    assert state["readyState"] >= 3  # HAVE_FUTURE_DATA: it plays from the new position
    # Chromium only offers seeking over HTTP when the server answers Range requests.
    assert state["seekableEnd"] == state["duration"]


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Given a PNG, return its width, height and how many distinct byte values its pixels use."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.parametrize(("label", "width", "height"),
                         [("laptop", 1280, 800), ("phone", 390, 844)])
def test_screenshot_of_the_page(browser: Browser, site: Server, problems: list[str],
                                tmp_path: Path, label: str, width: int, height: int) -> None:
    for page in open_page(browser, site, problems, width=width, height=height):
        page.goto("/browse/docs")
        tick(page, "notes", "readme.txt")
        shot = tmp_path / f"{label}.png"
        page.screenshot(path=str(shot))
    data = shot.read_bytes()
    w, h, colours = png_size_and_colours(data)
    assert (w, h) == (width, height)
    assert colours > 50 and len(data) > 10_000  # text, icons and buttons, not a blank page
    assert problems == []
    keep = os.environ.get("ZIPSERVE_SCREENSHOTS")
    if keep:
        name = "screenshot.png" if label == "laptop" else f"screenshot-{label}.png"
        shutil.copyfile(shot, Path(keep) / name)


WINDOWS_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0 Safari/537.36")
LINUX_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"


@pytest.mark.parametrize(("agent", "windows"), [(WINDOWS_UA, True), (LINUX_UA, False)])
def test_windows_browsers_get_windows_safe_names_by_default(browser: Browser, site: Server,
                                                           tmp_path: Path, agent: str,
                                                           windows: bool) -> None:
    context = browser.new_context(base_url=site.url, user_agent=agent, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto("/browse/odd")
        box = page.get_by_label("Windows-safe names")
        assert box.is_checked() == windows
        page.get_by_label("Select all").check()
        with zipfile.ZipFile(io.BytesIO(saved(download(page, "Download ZIP"), tmp_path))) as z:
            names = set(z.namelist())
            contents = sorted(z.read(n) for n in names)
        assert contents == sorted(ODD.values())  # every file, whatever its name
        hostile = [n for n in ODD if any(c in n for c in '<>:"|?*')]
        if windows:  # no name keeps a character Explorer refuses
            assert not any(c in n for n in names for c in '<>:"|?*')
        else:
            assert names == set(ODD) and hostile
    finally:
        context.close()
