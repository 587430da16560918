"""``cluster-layout.zeek``: the subset of Zeek written by zeekctl and by the agent,
tokenized and evaluated with Zeek's error messages."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

NODE_TYPES = ("NONE", "CONTROL", "LOGGER", "MANAGER", "PROXY", "WORKER")


@dataclass(frozen=True, slots=True)
class Port:
    """A Zeek ``port`` value."""

    number: int
    proto: str

    def __str__(self) -> str:
        return f"{self.number}/{self.proto}"


@dataclass(frozen=True, slots=True)
class Addr:
    """A Zeek ``addr`` value."""

    value: str


@dataclass(frozen=True, slots=True)
class EnumRef:
    """An identifier used as a value (``Cluster::MANAGER``, ``T``, ...)."""

    name: str


@dataclass(frozen=True, slots=True)
class RecordCtor:
    """``[$a=x, $b=y]``."""

    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ListCtor:
    """``[x, y]`` (vector/index list) or ``{x, y}`` (set) or ``{[k] = v}`` (table)."""

    kind: str
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """One ``Cluster::Node`` entry of the layout."""

    node_type: str
    ip: str
    zone_id: str = ""
    p: str = "0/unknown"
    manager: str | None = None
    metrics_port: str | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """The cluster layout as Zeek would see it after loading ``cluster-layout``."""

    file: str
    manager_is_logger: bool
    nodes: dict[str, ClusterNode]
    other_redefs: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """The layout as the record file shows it."""
        return {
            "file": self.file,
            "abspath": os.path.abspath(self.file),
            "manager_is_logger": self.manager_is_logger,
            "nodes": {k: asdict(v) for k, v in self.nodes.items()},
            "other_redefs": list(self.other_redefs),
        }


class ZeekScriptError(Exception):
    """A Zeek parse/semantic error at ``line`` with Zeek's message text."""

    def __init__(self, line: int, msg: str) -> None:
        super().__init__(msg)
        self.line = line
        self.msg = msg


class Unsupported(Exception):
    """Valid Zeek the double does not understand."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ID STRING PORT ADDR NUMBER PUNCT KEYWORD DIRECTIVE
    text: str
    line: int
    value: Any = None


_TOKEN_RE = re.compile(
    r"""
    (?P<NL>\n)
  | (?P<WS>[ \t\r\f]+)
  | (?P<COMMENT>\#[^\n]*)
  | (?P<DIRECTIVE>@[A-Za-z_-]+)
  | (?P<STRING>"(?:[^"\\\n]|\\.)*")
  | (?P<PORT>\d+/(?:tcp|udp|icmp|unknown)\b)
  | (?P<ADDR6>\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\])
  | (?P<ADDR4>\d+\.\d+\.\d+\.\d+(?![\d.]))
  | (?P<NUMBER>\d+(?:\.\d+)?)
  | (?P<ID>[A-Za-z_][A-Za-z_0-9]*(?:::[A-Za-z_][A-Za-z_0-9]*)*)
  | (?P<PUNCT>\+=|-=|[{}\[\]();,=$-])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> Iterator[Token]:
    """Split a Zeek script into tokens, with Zeek's lexer errors."""
    line = 1
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ZeekScriptError(line, f"unrecognized character: '{text[pos]}'")
        kind = m.lastgroup
        tok = m.group()
        pos = m.end()
        if kind == "NL":
            line += 1
        elif kind in ("WS", "COMMENT"):
            continue
        elif kind == "STRING":
            value = _unescape(tok[1:-1])
            yield Token("STRING", tok, line, value)
        elif kind == "PORT":
            num, proto = tok.split("/")
            if int(num) > 65535:
                raise ZeekScriptError(line, f"bad port number - {tok}")
            yield Token("PORT", tok, line, Port(int(num), proto))
        elif kind in ("ADDR4", "ADDR6"):
            raw = tok[1:-1] if kind == "ADDR6" else tok
            try:
                addr = ipaddress.ip_address(raw)
            except ValueError:
                raise ZeekScriptError(line, f"bad IP address: {tok}") from None
            if kind == "ADDR4" and addr.version != 4:
                raise ZeekScriptError(line, f"bad IP address: {tok}")
            yield Token("ADDR", tok, line, Addr(str(addr)))
        elif kind == "NUMBER":
            yield Token("NUMBER", tok, line, float(tok) if "." in tok else int(tok))
        elif kind == "ID":
            yield Token("KEYWORD" if tok in ("redef", "module") else "ID", tok, line, tok)
        else:
            assert kind is not None
            yield Token(kind, tok, line, tok)


def _unescape(s: str) -> str:
    out: list[str] = []
    i = 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", s[i + 2 : i + 4]):
                out.append(chr(int(s[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(simple.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class LayoutParser:
    """A recursive-descent parser for ``redef <id> (=|+=) <expr>;`` statements."""

    def __init__(self, text: str) -> None:
        self.tokens = list(tokenize(text))
        self.pos = 0
        self.last_line = 1

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise ZeekScriptError(self.last_line, "syntax error, at end of file")
        self.pos += 1
        self.last_line = tok.line
        return tok

    def expect(self, text: str) -> Token:
        tok = self.next()
        if tok.text != text:
            raise self.syntax_error(tok)
        return tok

    @staticmethod
    def syntax_error(tok: Token) -> ZeekScriptError:
        return ZeekScriptError(tok.line, f'syntax error, at or near "{tok.text}"')

    def statements(self) -> Iterator[tuple[int, str, str, Any]]:
        """Yield ``(line, identifier, operator, value)`` for each redef."""
        while (tok := self.peek()) is not None:
            if tok.kind == "DIRECTIVE":
                raise Unsupported(f"{tok.text} in cluster-layout (line {tok.line})")
            if tok.kind == "PUNCT" and tok.text == ";":
                self.next()
                continue
            if tok.text != "redef":
                if tok.kind in ("ID", "KEYWORD"):
                    raise Unsupported(f"statement {tok.text!r} in cluster-layout (line {tok.line})")
                raise self.syntax_error(self.next())
            self.next()
            ident = self.next()
            if ident.kind != "ID":
                raise self.syntax_error(ident)
            op = self.next()
            if op.text not in ("=", "+=", "-="):
                raise self.syntax_error(op)
            value = self.expr()
            self.expect(";")
            yield ident.line, ident.text, op.text, value

    def expr(self) -> Any:
        tok = self.next()
        if tok.kind in ("STRING", "PORT", "ADDR", "NUMBER"):
            return tok.value
        if tok.kind == "ID":
            if (nxt := self.peek()) is not None and nxt.text == "(":
                raise Unsupported(f"function call {tok.text}(...) (line {tok.line})")
            return EnumRef(tok.text)
        if tok.text == "-":
            val = self.expr()
            if not isinstance(val, int | float):
                raise self.syntax_error(tok)
            return -val
        if tok.text == "[":
            return self.bracket()
        if tok.text == "{":
            return self.brace()
        raise self.syntax_error(tok)

    def bracket(self) -> Any:
        """After ``[``: a record constructor (``$f=v``) or a list."""
        if (tok := self.peek()) is not None and tok.text == "$":
            fields: list[tuple[str, Any]] = []
            while True:
                self.expect("$")
                name = self.next()
                if name.kind != "ID":
                    raise self.syntax_error(name)
                self.expect("=")
                fields.append((name.text, self.expr()))
                sep = self.next()
                if sep.text == "]":
                    return RecordCtor(tuple(fields))
                if sep.text != ",":
                    raise self.syntax_error(sep)
                if (tok := self.peek()) is not None and tok.text == "]":
                    self.next()
                    return RecordCtor(tuple(fields))
        return ListCtor("list", tuple(self._items("]")))

    def brace(self) -> ListCtor:
        """After ``{``: a table (``[k] = v`` items) or a set."""
        items = self._items("}", allow_assign=True)
        kind = "table" if items and all(isinstance(i, tuple) for i in items) else "set"
        if any(isinstance(i, tuple) for i in items) and kind != "table":
            raise ZeekScriptError(self.last_line, "inconsistent types in table constructor")
        return ListCtor(kind, tuple(items))

    def _items(self, close: str, allow_assign: bool = False) -> list[Any]:
        items: list[Any] = []
        while True:
            tok = self.peek()
            if tok is not None and tok.text == close:
                self.next()
                return items
            item = self.expr()
            if allow_assign and (tok := self.peek()) is not None and tok.text == "=":
                self.next()
                item = (item, self.expr())
            items.append(item)
            sep = self.next()
            if sep.text == close:
                return items
            if sep.text != ",":
                raise self.syntax_error(sep)


def parse_layout(text: str, file: str) -> Layout:
    """Evaluate a ``cluster-layout.zeek``; raises ZeekScriptError or Unsupported."""
    parser = LayoutParser(text)
    manager_is_logger = True
    nodes: dict[str, ClusterNode] = {}
    other: list[str] = []
    for line, ident, op, value in parser.statements():
        if ident == "Cluster::manager_is_logger":
            if op != "=" or not (isinstance(value, EnumRef) and value.name in ("T", "F")):
                raise ZeekScriptError(line, "type clash in assignment (Cluster::manager_is_logger)")
            manager_is_logger = value.name == "T"
        elif ident == "Cluster::nodes":
            if not (isinstance(value, ListCtor) and value.kind in ("table", "set")):
                raise ZeekScriptError(line, "type clash in assignment (Cluster::nodes)")
            if value.kind == "set" and value.items:
                raise ZeekScriptError(line, "type clash in assignment (Cluster::nodes)")
            if op == "=":
                nodes = {}
            for item in value.items:
                key, rec = item
                if isinstance(key, ListCtor) and len(key.items) == 1:
                    key = key.items[0]
                if not isinstance(key, str):
                    raise ZeekScriptError(line, "type clash in table index (Cluster::nodes)")
                if op == "-=":
                    nodes.pop(key, None)
                else:
                    nodes[key] = _cluster_node(rec, line)
        else:
            other.append(ident)
    return Layout(file, manager_is_logger, nodes, tuple(other))


def _cluster_node(rec: Any, line: int) -> ClusterNode:
    if not isinstance(rec, RecordCtor):
        raise ZeekScriptError(line, "type clash in table assignment (Cluster::Node)")
    fields: dict[str, Any] = {}
    for name, val in rec.fields:
        fields[name] = val
    known = {"node_type", "ip", "zone_id", "p", "manager", "id", "metrics_port"}
    for name in fields:
        if name not in known:
            raise ZeekScriptError(line, f"invalid field name in record coercion ($${name})")
    for required in ("node_type", "ip"):
        if required not in fields:
            raise ZeekScriptError(line, f"required field missing (Cluster::Node${required})")
    nt = fields["node_type"]
    if not isinstance(nt, EnumRef):
        raise ZeekScriptError(line, 'type clash for field "node_type" (enum)')
    short = nt.name.removeprefix("Cluster::")
    if short not in NODE_TYPES or not nt.name.startswith("Cluster::"):
        raise ZeekScriptError(line, f"unknown identifier {nt.name}")
    if not isinstance(fields["ip"], Addr):
        raise ZeekScriptError(line, 'type clash for field "ip" (addr)')
    for pf in ("p", "metrics_port"):
        if pf in fields and not isinstance(fields[pf], Port):
            raise ZeekScriptError(line, f'type clash for field "{pf}" (port)')
    for sf in ("zone_id", "manager", "id"):
        if sf in fields and not isinstance(fields[sf], str):
            raise ZeekScriptError(line, f'type clash for field "{sf}" (string)')
    return ClusterNode(
        node_type=short,
        ip=fields["ip"].value,
        zone_id=fields.get("zone_id", ""),
        p=str(fields.get("p", "0/unknown")),
        manager=fields.get("manager"),
        metrics_port=str(fields["metrics_port"]) if "metrics_port" in fields else None,
    )
