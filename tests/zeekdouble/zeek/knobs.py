"""The test knobs (``ZEEK_DOUBLE_*`` variables) and the record file tests read."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from .report import to_stderr

DEFAULT_CRASH_MESSAGE = "fatal error: simulated crash (ZEEK_DOUBLE_CRASH_AFTER)"


@dataclass(frozen=True, slots=True)
class Knobs:
    """Test knobs from ``ZEEK_DOUBLE_*`` variables (see the package docstring)."""

    start_delay: float = 0.0
    crash_after: float | None = None
    crash_signal: int | None = None
    crash_message: str = DEFAULT_CRASH_MESSAGE
    exit_code: int = 1
    ignore_sigterm: bool = False
    stdout_lines: int = 0
    stderr_lines: int = 0
    record_dir: str | None = None
    prefix: str | None = None
    strict_zeekpath: bool = False
    rotate_interval: float | None = None
    log_paths: tuple[str, ...] = ("conn", "dns")
    ids: dict[str, Any] = field(default_factory=dict)
    block_in_init: str | None = None
    drop_dispatches: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Knobs:
        def num(key: str, default: float | None) -> float | None:
            raw = env.get(key, "")
            return float(raw) if raw.strip() else default

        sig_raw = env.get("ZEEK_DOUBLE_CRASH_SIGNAL", "").strip()
        crash_signal: int | None = None
        if sig_raw:
            if sig_raw.isdigit():
                crash_signal = int(sig_raw)
            else:
                name = sig_raw.upper()
                crash_signal = int(
                    getattr(signal, name if name.startswith("SIG") else "SIG" + name)
                )
        return cls(
            start_delay=num("ZEEK_DOUBLE_START_DELAY", 0.0) or 0.0,
            crash_after=num("ZEEK_DOUBLE_CRASH_AFTER", None),
            crash_signal=crash_signal,
            crash_message=env.get("ZEEK_DOUBLE_CRASH_MESSAGE") or DEFAULT_CRASH_MESSAGE,
            exit_code=int(num("ZEEK_DOUBLE_EXIT_CODE", 1) or 0),
            ignore_sigterm=env.get("ZEEK_DOUBLE_IGNORE_SIGTERM", "") not in ("", "0"),
            stdout_lines=int(num("ZEEK_DOUBLE_STDOUT_LINES", 0) or 0),
            stderr_lines=int(num("ZEEK_DOUBLE_STDERR_LINES", 0) or 0),
            record_dir=env.get("ZEEK_DOUBLE_RECORD") or None,
            prefix=env.get("ZEEK_DOUBLE_PREFIX") or None,
            strict_zeekpath=env.get("ZEEK_DOUBLE_STRICT_ZEEKPATH", "") not in ("", "0"),
            rotate_interval=num("ZEEK_DOUBLE_ROTATE_INTERVAL", None),
            log_paths=tuple(
                p.strip() for p in env.get("ZEEK_DOUBLE_LOGS", "conn,dns").split(",") if p.strip()
            ),
            ids=json.loads(env["ZEEK_DOUBLE_IDS"]) if env.get("ZEEK_DOUBLE_IDS") else {},
            block_in_init=env.get("ZEEK_DOUBLE_BLOCK_IN_INIT") or None,
            drop_dispatches=int(num("ZEEK_DOUBLE_DROP_DISPATCHES", 0) or 0),
        )


class Recorder:
    """Writes ``<record_dir>/<name>.json`` so tests can see how the double was run."""

    def __init__(self, record_dir: str | None, name: str) -> None:
        self.dir = record_dir
        self.name = name
        self.data: dict[str, Any] = {}
        self._launched = False

    def update(self, **items: Any) -> None:
        self.data.update(items)
        self.write()

    def write(self) -> None:
        if self.dir is None:
            return
        try:
            os.makedirs(self.dir, exist_ok=True)
            final = os.path.join(self.dir, f"{self.name}.json")
            tmp = f"{final}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.data, f, indent=2, sort_keys=True, default=str)
            os.replace(tmp, final)
            if not self._launched:
                self._launched = True
                with open(os.path.join(self.dir, f"{self.name}.launches.jsonl"), "a") as f:
                    f.write(json.dumps(self.data, sort_keys=True, default=str) + "\n")
        except OSError as exc:
            to_stderr(f"zeek-double: cannot write record file in {self.dir}: {exc}")

    def finish(self, code: int, how: str) -> None:
        self.update(phase="terminated", exit_code=code, exit_reason=how, ended_at=time.time())
