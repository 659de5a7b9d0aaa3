"""A headless Chromium driven over the DevTools protocol (a websocket, the ``websockets`` package): the page tests'.

``chromium_binary()`` finds Debian's ``chromium`` (or Chrome) or returns None (the tests then skip).
``HeadlessChromium(binary, profile_dir)`` starts it (a fresh profile folder, no network services,
``--remote-debugging-port=0``: the port is read back from the profile's ``DevToolsActivePort``), opens
one page and offers what the tests need: ``navigate``, ``evaluate`` (a JavaScript expression's value;
promises awaited), ``wait_for`` (poll an expression until it is truthy), ``press`` (a real key event)
and ``exceptions`` (uncaught page errors). ``close()`` ends the browser (by its process id).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from typing import Any, Optional

from websockets.sync.client import connect

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--no-default-browser-check",
         "--remote-debugging-port=0")


def chromium_binary() -> Optional[str]:
  """The first Chromium/Chrome on PATH, or None."""
  for name in BINARIES:
    path = shutil.which(name)
    if path:
      return path
  return None


class HeadlessChromium:
  """One headless browser with one page (see the module docstring)."""

  def __init__(self, binary: str, profile_dir: str, timeout_s: float = 30.0):
    self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    self._ids = itertools.count(1)
    self.exceptions: list[str] = []
    port_file = os.path.join(profile_dir, "DevToolsActivePort")
    deadline = time.monotonic() + timeout_s
    while not (os.path.exists(port_file) and len(open(port_file, encoding="utf-8").read().split()) >= 2):
      if self.process.poll() is not None or time.monotonic() > deadline:
        self.close()
        raise RuntimeError(f"Chromium did not start: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
      time.sleep(0.05)
    port, path = open(port_file, encoding="utf-8").read().split()[:2]
    self.socket = connect(f"ws://127.0.0.1:{port}{path}", max_size=2**26, open_timeout=timeout_s)
    target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
    self.session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    self.call("Runtime.enable")
    self.call("Page.enable")

  def _call(self, method: str, params: Optional[dict] = None, session: Optional[str] = None,
            timeout_s: float = 30.0) -> dict:
    message_id = next(self._ids)
    message = {"id": message_id, "method": method, "params": params or {}}
    if session:
      message["sessionId"] = session
    self.socket.send(json.dumps(message))
    deadline = time.monotonic() + timeout_s
    while True:
      reply = json.loads(self.socket.recv(timeout=max(0.01, deadline - time.monotonic())))
      if reply.get("method") == "Runtime.exceptionThrown":
        details = reply["params"]["exceptionDetails"]
        self.exceptions.append(details.get("exception", {}).get("description") or details.get("text", "?"))
      if reply.get("id") == message_id:
        if "error" in reply:
          raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

  def call(self, method: str, params: Optional[dict] = None) -> dict:
    """A DevTools command on the page."""
    return self._call(method, params, self.session)

  def navigate(self, url: str) -> None:
    self.call("Page.navigate", {"url": url})
    self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

  def evaluate(self, expression: str) -> Any:
    """The value of a JavaScript expression on the page (a promise is awaited)."""
    result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
    if "exceptionDetails" in result:
      raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('exception', {}).get('description')}")
    return result["result"].get("value")

  def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
    """Polls ``expression`` until it is truthy; its value (TimeoutError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
      value = self.evaluate(expression)
      if value:
        return value
      if time.monotonic() > deadline:
        raise TimeoutError(f"{expression} still {value!r} after {timeout_s} s")
      time.sleep(0.05)

  def press(self, key: str) -> None:
    """Types one printable key (keydown with its text, keyup) where the page's focus is."""
    self.call("Input.dispatchKeyEvent", {"type": "keyDown", "key": key, "text": key, "unmodifiedText": key})
    self.call("Input.dispatchKeyEvent", {"type": "keyUp", "key": key})

  def close(self) -> None:
    socket = getattr(self, "socket", None)
    if socket is not None:
      socket.close()
    if self.process.poll() is None:
      self.process.terminate()
      try:
        self.process.wait(10)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait(10)
