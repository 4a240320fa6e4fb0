"""The child-process side of a `def` step: import the function, run it, send logs, metrics and the result
back over a pipe. Started from a forkserver that preloads this module, so a step starts in milliseconds
without inheriting the server's threads, sockets or event loop."""

from __future__ import annotations

import importlib
import io
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def resolve(target: str) -> Any:
    """`module:qualname` → the object (a step function)."""
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class _LineWriter(io.TextIOBase):
    """stdout/stderr of the step, sent to its log line by line."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.buffer_ = ""

    def write(self, text: str) -> int:
        self.buffer_ += text
        while "\n" in self.buffer_:
            line, self.buffer_ = self.buffer_.split("\n", 1)
            self.send(("log", line))
        return len(text)

    def flush(self) -> None:
        if self.buffer_:
            self.send(("log", self.buffer_))
            self.buffer_ = ""


def _die_with_parent() -> None:
    """Linux: be killed when the forkserver goes (it goes when the server does), so a crashed server leaves
    no step running on its own."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(conn: Connection, spec: dict[str, Any]) -> None:
    from hearth.workflows.pipeline import StepContext

    _die_with_parent()

    def send(message: tuple[Any, ...]) -> None:
        conn.send(message)

    ctx = StepContext(
        run_id=spec["run_id"],
        step=spec["step"],
        attempt=spec["attempt"],
        params=spec["params"],
        upstream=spec["upstream"],
        workdir=Path(spec["workdir"]),
        inputs={k: Path(v) for k, v in spec["inputs"].items()},
        owner_id=spec["owner_id"],
        emit=send,
    )
    writer = _LineWriter(send)
    sys.stdout = sys.stderr = writer  # type: ignore[assignment]
    try:
        result = resolve(spec["target"])(ctx)
        writer.flush()
        send(("done", result))
    except BaseException as exc:
        writer.flush()
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
        send(("error", f"{type(exc).__name__}: {exc}{at}", traceback.format_exc()[-3000:]))
    finally:
        conn.close()
