"""A real HTTP origin for tests: nginx on 127.0.0.1 (and a second server on 127.0.0.2) serving a folder.

ETag and Range are nginx's defaults; every request is written to one access
log, so a test can count the requests that reached each address.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port, need_tool, run


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """Given a folder, write a certificate for 127.0.0.1 (an IP subjectAltName) and its key; return both."""
    need_tool("openssl")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    return cert, key

CONFIG = """
daemon off;
master_process off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format counted '$server_addr $request_method $request_uri $status';
    access_log {tmp}/access.log counted;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location /ok/plain/ {{ etag off; }}
{redirects}
    }}
    server {{
        listen 127.0.0.2:{port2};
        root {www};
    }}
{tls_server}
}}
"""


@dataclass
class Origin:
    """A running nginx: its folder, ports, and the log of the requests it received."""

    www: Path
    port: int
    port2: int
    log: Path
    process: subprocess.Popen[bytes]
    tls_port: int = 0  # HTTPS on 127.0.0.1 when started with a certificate

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, address: str | None = None) -> list[str]:
        """Return the access log's lines ("addr METHOD uri status"), those to `address` if given."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line for line in lines if address is None or line.split(" ")[0] == address]

    def settled(self, quiet: float = 0.2) -> list[str]:
        """Return the log's lines once none was added for `quiet` seconds (nginx logs after it answers)."""
        lines = self.requests()
        while True:
            time.sleep(quiet)
            again = self.requests()
            if again == lines:
                return lines
            lines = again


TLS_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www};
    }}"""


def start_origin(tmp: Path, redirects: dict[str, str], tls: tuple[Path, Path] | None = None) -> Origin:
    """Given a temp folder, {exact path: Location} to answer with 302, and optionally a
    (certificate, key) to serve HTTPS with too, start nginx; return it."""
    need_tool("nginx")
    www = tmp / "www"
    www.mkdir(exist_ok=True)
    port, port2 = free_port(), free_port()
    lines = "\n".join(f"        location = {path} {{ return 302 {target.format(port=port, port2=port2)}; }}"
                      for path, target in redirects.items())
    tls_port = free_port() if tls else 0
    tls_server = TLS_SERVER.format(port=tls_port, cert=tls[0], key=tls[1], www=www) if tls else ""
    conf = tmp / "nginx.conf"
    conf.write_text(CONFIG.format(tmp=tmp, www=www, port=port, port2=port2, redirects=lines,
                                  tls_server=tls_server))
    process = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    origin = Origin(www, port, port2, tmp / "access.log", process, tls_port)
    deadline = time.monotonic() + 10
    listening = [("127.0.0.1", port), ("127.0.0.2", port2)] + ([("127.0.0.1", tls_port)] if tls else [])
    for address, p in listening:
        while True:
            try:
                socket.create_connection((address, p), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    stop_origin(origin)
                    raise RuntimeError(f"nginx did not start: {(tmp / 'error.log').read_text()}"
                                       ) from None
                time.sleep(0.02)
    return origin


def stop_origin(origin: Origin) -> None:
    """Stop the nginx process (by its own pid) and wait for it."""
    if origin.process.poll() is None:
        origin.process.terminate()
        origin.process.wait(10)
