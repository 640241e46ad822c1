"""Open an HTML file in headless Chromium and report what a reader's browser would show.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages ending in a NUL
byte, Chromium reading fd 3 and writing fd 4): no websocket client, no driver, no npm package;
only Debian's ``chromium``. The flags keep it from reaching the network (closed here) and from
needing a sandbox as root.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")  # Debian's package (cowbench/packages.py)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--window-size=1200,2000", "--remote-debugging-pipe"]
IMAGES_JS = ("JSON.stringify(Array.from(document.images).map("
             "i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]))")


@dataclass
class PageReport:
    images: list[tuple[bool, int, int, str]]
    errors: list[str] = field(default_factory=list)
    screenshot_png: bytes = b""


class _Pipe:
    def __init__(self, proc: subprocess.Popen[bytes], to_chrome: int, from_chrome: int) -> None:
        self.proc, self.out, self.inp = proc, to_chrome, from_chrome
        self.buf, self.next_id, self.events = b"", 0, []  # type: ignore[var-annotated]

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.out, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return dict(self.events.pop(i))
        while True:
            ev = self._read(timeout)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.inp], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return dict(json.loads(msg))


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for ev in events:
        p = ev.get("params", {})
        if ev.get("method") == "Runtime.exceptionThrown":
            det = p.get("exceptionDetails", {})
            out.append(f"{det.get('text')} {det.get('exception', {}).get('description', '')}")
        elif ev.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error",
                                                                                  "assert"):
            out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
        elif ev.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return out


def open_page(html: Path, settle_s: float = 0.5) -> PageReport:
    """Load ``html`` from its file, wait for the load event, and collect images and errors."""
    assert CHROMIUM, "chromium is not installed"
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    # above 9 so that moving them onto 3 and 4 in the child can never clobber one another
    high_r, high_w = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(
        from_w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(to_r)
    os.close(from_w)

    def child_fds() -> None:  # fds 3 and 4 are what Chromium's pipe mode reads and writes
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    with tempfile.TemporaryDirectory(prefix="cowbench-chromium-") as profile:
        # close_fds=False: every other fd Python holds is close-on-exec already (PEP 446)
        proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}"],
                                preexec_fn=child_fds, close_fds=False,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(high_r)
        os.close(high_w)
        pipe = _Pipe(proc, to_w, from_r)
        try:
            return _inspect(pipe, html, settle_s)
        finally:
            try:
                pipe.send("Browser.close", timeout=5)
            except (OSError, RuntimeError, TimeoutError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_w)
            os.close(from_r)


def _inspect(pipe: _Pipe, html: Path, settle_s: float) -> PageReport:
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"]
    for domain in ("Runtime", "Log", "Page"):
        pipe.send(f"{domain}.enable", session=session)
    nav = pipe.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
    if nav.get("errorText"):  # Chromium would show its own error page, images and all
        raise RuntimeError(f"{html}: {nav['errorText']}")
    pipe.wait_event("Page.loadEventFired", timeout=60)
    time.sleep(settle_s)  # late console messages, if any
    res = pipe.send("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True},
                    session=session)
    images = [tuple(i) for i in json.loads(res["result"]["value"])]
    shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session=session)
    return PageReport(images, _errors(pipe.events),  # type: ignore[arg-type]
                      base64.b64decode(shot["data"]))
