"""Extract the example blocks of the wire spec into ``tests/data/wire_examples.json``.

Usage (from the repository root)::

    python tests/data/extract_wire_examples.py --spec path/to/wire-protocol.md [--check]

The spec is the project's wire contract (``spec/wire-protocol.md`` of the shared
material, outside this repository). The output is committed; ``tests/broker/test_golden_wire.py``
reads only the JSON, so the tests do not depend on where the spec lives. Re-run this
script whenever the spec's examples change and review the diff; ``--check`` only compares
and exits 1 when the committed table is out of date.

Every fenced code block of the spec becomes one entry, classified as:

* ``message``   -- a JSON object with ``type`` (handshake ack, error, data message);
* ``value``     -- a JSON object with ``@data-type`` (one Broker value); ``record`` names
  the Management record when the section documents one (``Management::Node`` ...);
* ``args``      -- a JSON array of Broker values (an "args-only" example, spec §0.3);
  ``events`` lists the qualified event names the surrounding prose says it belongs to;
* ``handshake`` -- a JSON array of strings;
* ``skip``      -- anything else, with ``reason`` saying why (not JSON, ``…`` placeholder,
  zeek-client output, INI file).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("wire_examples.json")

# Section number prefix -> qualified prefix of the events its args-only examples carry.
_API_BY_SECTION = {
    "5.": "Management::Controller::API::",
    "6.2": "Management::Agent::API::",
    "6.3": "Management::Node::API::",
    "6.4": "Management::Supervisor::API::",
}
_EVENT_RE = re.compile(r"`((?:[a-z]+_)+(?:request|response)|notify_[a-z_]+)`")
_RECORD_RE = re.compile(r"`Management::(Option|Instance|Node|NodeStatus|Result|NodeOutputs)`")
_PLACEHOLDER = "\u2026"  # the ellipsis the spec uses for elided parts


def _api_prefix(section: str) -> str | None:
    for number, prefix in _API_BY_SECTION.items():
        if section.startswith(number):
            return prefix
    return None


def _classify(body: str, lang: str, prose: str) -> dict[str, Any]:
    if lang == "ini":
        return {"kind": "skip", "reason": "INI file (zeek-client configuration), not JSON"}
    try:
        value = json.loads(body)
    except ValueError:
        return {"kind": "skip", "reason": "not valid JSON (diagram, HTTP text or <placeholders>)"}
    if _PLACEHOLDER in body:
        return {"kind": "skip", "reason": "valid JSON but contains a \u2026 placeholder"}
    if isinstance(value, dict):
        if "type" in value:
            return {"kind": "message"}
        if "@data-type" in value:
            return {"kind": "value"}
        last = prose.strip().splitlines()[-1] if prose.strip() else ""
        return {"kind": "skip", "reason": f"zeek-client output ({last.strip()})"}
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value) and value:
            return {"kind": "handshake"}
        if all(isinstance(v, dict) and "@data-type" in v for v in value):
            return {"kind": "args"}
    return {"kind": "skip", "reason": "JSON of no recognised shape"}


def extract(spec_text: str) -> list[dict[str, Any]]:
    """Return one entry per fenced code block of the spec (see the module docstring)."""
    lines = spec_text.split("\n")
    entries: list[dict[str, Any]] = []
    section = ""
    prose: list[str] = []  # text since the previous block (or heading)
    last_events: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            prose = []
            last_events = []
            i += 1
            continue
        if not line.startswith("```"):
            prose.append(line)
            i += 1
            continue
        lang = line[3:].strip()
        end = i + 1
        while not lines[end].startswith("```"):
            end += 1
        body = "\n".join(lines[i + 1 : end])
        text = "\n".join(prose)
        entry: dict[str, Any] = {"line": i + 2, "section": section, "fence": lang}
        entry.update(_classify(body, lang, text))
        if entry["kind"] == "value":
            record = _RECORD_RE.search(section)
            if record:
                entry["record"] = record.group(1)
        if entry["kind"] == "args":
            prefix = _api_prefix(section)
            # The heading names the events (section 5), else the paragraph right above the
            # block does ("`get_nodes_request` / `get_nodes_response`:"), else the block
            # continues the previous one's pair.
            paragraph = text.strip().split("\n\n")[-1]
            names = _EVENT_RE.findall(section) or _EVENT_RE.findall(paragraph) or last_events
            if prefix is not None and names:
                entry["events"] = sorted({prefix + n for n in names})
                last_events = names
        entry["text"] = body
        entries.append(entry)
        prose = []
        i = end + 1
    return entries


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Extract the wire spec's examples.")
    parser.add_argument("--spec", type=Path, required=True, help="path of wire-protocol.md")
    parser.add_argument("--check", action="store_true", help="compare only; 1 if stale")
    args = parser.parse_args(argv[1:])
    entries = extract(args.spec.read_text(encoding="utf-8"))
    if args.check:
        current = json.loads(OUTPUT.read_text(encoding="utf-8"))
        print(f"{OUTPUT}: {'up to date' if current == entries else 'OUT OF DATE'}")
        return 0 if current == entries else 1
    OUTPUT.write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    kinds: dict[str, int] = {}
    for e in entries:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    print(f"{len(entries)} blocks -> {OUTPUT}: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
