"""Benchmark: the built-in archiver against a ``gzip -6`` shell loop on the same files.

Generates ``--files`` rotated Zeek logs (``--total-mb`` in all, conn.log-like TSV with
realistic compressibility) once, then per run hard-links them into a fresh queue and times

* ``archive``: ``python -m mgmt archive -1 <queue> <archive>`` (a real subprocess, so
  interpreter start-up counts; in-process zlib level 6, fsync of every file and date
  directory, unlink of every source);
* ``gzip loop``: ``sh -c 'for f in <queue>/*; do gzip -6 < "$f" > <out>/"${f##*/}".gz; done'``
  (one gzip process per file, no fsync, sources kept).

Runs alternate the order of the two. Prints per-run times, the medians and ends with
``ratio archive vs gzip loop: <N.N>x`` (median archive time / median gzip-loop time;
target: at most 1.2).

Usage::

    python bench/archive.py [--files 2000] [--total-mb 1024] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_FIELDS = {
    "conn": (
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes "
        "resp_bytes conn_state local_orig local_resp missed_bytes history orig_pkts "
        "orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents ip_proto",
        "time string addr port addr port enum string interval count count string bool bool "
        "count string count count count count set[string] count",
    ),
    "dns": (
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query qclass "
        "qclass_name qtype qtype_name rcode rcode_name AA TC RD RA Z answers TTLs rejected",
        "time string addr port addr port enum count interval string count string count string "
        "count string bool bool bool bool count vector[string] vector[interval] bool",
    ),
    "http": (
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p trans_depth method host uri referrer "
        "version user_agent origin request_body_len response_body_len status_code status_msg "
        "info_code info_msg tags username password proxied orig_fuids orig_filenames "
        "orig_mime_types resp_fuids resp_filenames resp_mime_types",
        "time string addr port addr port count string string string string string string "
        "string count count count string count string set[enum] string string set[string] "
        "vector[string] vector[string] vector[string] vector[string] vector[string] "
        "vector[string]",
    ),
}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _header(path: str, opened: str) -> str:
    fields, types = _FIELDS[path]
    return (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        f"#path\t{path}\n#open\t{opened}\n"
        "#fields\t" + fields.replace(" ", "\t") + "\n#types\t" + types.replace(" ", "\t") + "\n"
    )


def _columns(*fields: object) -> str:
    """``\t<field>`` for each field, then the newline: a log line after its originator."""
    return "".join(f"\t{f}" for f in fields) + "\n"


class _Pools:
    """Value pools with skewed (Zipf-like) popularity, as real traffic has."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.inside = [f"10.1.{rng.randrange(8)}.{rng.randrange(1, 255)}" for _ in range(120)]
        self.outside = [
            ".".join(
                str(rng.randrange(lo, hi)) for lo, hi in ((1, 224), (0, 256), (0, 256), (1, 255))
            )
            for _ in range(600)
        ]
        self.domains = [
            f"{rng.choice(['www', 'api', 'cdn', 'mail', 'static', 'img'])}."
            f"{''.join(rng.choices('abcdefghijklmnopqrstuvwxyz', k=rng.randrange(4, 11)))}."
            f"{rng.choice(['com', 'net', 'org', 'io', 'de'])}"
            for _ in range(400)
        ]
        self.agents = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{rng.randrange(100, 125)}.0.0.0 Safari/537.36"
            for _ in range(6)
        ] + ["curl/8.5.0", "Debian APT-HTTP/1.3 (2.6.1)", "python-requests/2.31.0"]
        self.iw = [1.0 / (i + 1) for i in range(len(self.inside))]
        self.ow = [1.0 / (i + 1) for i in range(len(self.outside))]
        self.dw = [1.0 / (i + 1) for i in range(len(self.domains))]

    def pick(self, values: list[str], weights: list[float]) -> str:
        return self.rng.choices(values, weights)[0]

    def uid(self) -> str:
        return "C" + "".join(self.rng.choices(_B62, k=17))

    def originator(self) -> str:
        """``\\t<uid>\\t<orig_h>\\t<orig_p>``: how every line of these logs goes on."""
        uid, host = self.uid(), self.pick(self.inside, self.iw)
        return f"\t{uid}\t{host}\t{self.rng.randrange(32768, 61000)}"

    def conn(self) -> str:
        rng = self.rng
        proto, port, service = rng.choice(
            [("tcp", 443, "ssl"), ("tcp", 443, "ssl"), ("tcp", 80, "http"), ("udp", 53, "dns"),
             ("udp", 53, "dns"), ("tcp", 22, "ssh"), ("udp", 123, "ntp"), ("tcp", 445, "-")]
        )  # fmt: skip
        state, history = rng.choice(
            [("SF", "ShADadFf"), ("SF", "ShADadFf"), ("S0", "S"), ("REJ", "Sr"), ("SF", "Dd"),
             ("RSTO", "ShADadR"), ("SH", "ShADaF")]
        )  # fmt: skip
        ob = int(rng.lognormvariate(5, 1.5)) if state != "S0" else 0
        rb = int(rng.lognormvariate(6, 2)) if state != "S0" else 0
        opk, rpk = 1 + ob // 1400, rb // 1400 + (state != "S0")
        return self.originator() + _columns(
            self.pick(self.outside, self.ow), port, proto, service, f"{rng.expovariate(4):.6f}",
            ob, rb, state, "T", "F", 0, history, opk, ob + 52 * opk, rpk, rb + 52 * rpk, "-",
            6 if proto == "tcp" else 17,
        )  # fmt: skip

    def dns(self) -> str:
        rng = self.rng
        q = self.pick(self.domains, self.dw)
        qtype, qname = rng.choice([(1, "A"), (1, "A"), (28, "AAAA"), (65, "HTTPS")])
        answers = ",".join(self.pick(self.outside, self.ow) for _ in range(rng.randrange(1, 3)))
        return self.originator() + _columns(
            "10.1.0.1", 53, "udp", rng.randrange(65536), f"{rng.expovariate(50):.6f}", q, 1,
            "C_INTERNET", qtype, qname, 0, "NOERROR", "F", "F", "T", "T", 0, answers,
            rng.choice(["60.000000", "300.000000", "3600.000000"]), "F",
        )  # fmt: skip

    def http(self) -> str:
        rng = self.rng
        host = self.pick(self.domains, self.dw)
        uri = "/" + "/".join(rng.choice(["api", "v1", "static", "img", "index.html", "js", "css",
                                         "assets", "app.js", "logo.png"])
                             for _ in range(rng.randrange(1, 4)))  # fmt: skip
        status, msg = rng.choice(
            [(200, "OK"), (200, "OK"), (304, "Not Modified"), (404, "Not Found")]
        )
        mime = rng.choice(["text/html", "application/javascript", "image/png", "text/css"])
        return self.originator() + _columns(
            self.pick(self.outside, self.ow), 80, 1, "GET", host, uri, "-", "1.1",
            rng.choice(self.agents), "-", 0, int(rng.lognormvariate(8, 1.5)), status, msg,
            "-", "-", "(empty)", "-", "-", "-", "-", "-", "-", "F" + self.uid()[1:], "-", mime,
        )  # fmt: skip


def generate(src: Path, files: int, total_bytes: int, seed: int = 1) -> int:
    """Write ``files`` rotated logs of about ``total_bytes`` into ``src``; return the size.

    Lines are drawn from per-log-type pools of unique lines (so that nothing repeats within
    deflate's window more than real logs do); timestamps increase through each file.
    """
    rng = random.Random(seed)
    pools = _Pools(rng)
    makers = {"conn": pools.conn, "dns": pools.dns, "http": pools.http}
    line_pools = {path: [make() for _ in range(60_000)] for path, make in makers.items()}
    per_file = max(1, total_bytes // files)
    nodes = ["logger-1", "logger-2"]
    paths = list(makers)
    written = 0
    for i in range(files):
        slot = i // (len(paths) * len(nodes))
        day, hour = 1 + slot // 24 % 28, slot % 24
        path, node = paths[i % len(paths)], nodes[i // len(paths) % len(nodes)]
        opened = f"2026-03-{day:02d}-{hour:02d}-00-00"
        closed = f"2026-03-{day:02d}-{hour:02d}-59-59"
        name = f"{path}__{opened}__{closed}__log_suffix={node}__.log"
        ts = 1_772_323_200.0 + slot * 3600.0
        parts = [_header(path, opened)]
        size = len(parts[0])
        pool = line_pools[path]
        while size < per_file:
            for line in rng.choices(pool, k=256):
                ts += rng.expovariate(20.0)
                s = f"{ts:.6f}{line}"
                parts.append(s)
                size += len(s)
        parts.append(f"#close\t{closed}\n")
        data = "".join(parts).encode()
        (src / name).write_bytes(data)
        written += len(data)
    return written


def _fresh_queue(src: Path, queue: Path) -> None:
    if queue.exists():
        shutil.rmtree(queue)
    queue.mkdir()
    for entry in os.scandir(src):
        os.link(entry.path, queue / entry.name)


def run_archive(src: Path, work: Path) -> float:
    queue, archive = work / "queue", work / "archive"
    _fresh_queue(src, queue)
    if archive.exists():
        shutil.rmtree(archive)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mgmt", "archive", "-1", str(queue), str(archive)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - t0
    if any(queue.iterdir()):
        raise SystemExit("archive left files in the queue")
    return elapsed


def run_gzip_loop(src: Path, work: Path) -> float:
    queue, out = work / "queue", work / "gzout"
    _fresh_queue(src, queue)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    script = 'for f in "$1"/*; do gzip -6 < "$f" > "$2/${f##*/}.gz" || exit 1; done'
    t0 = time.perf_counter()
    subprocess.run(["sh", "-c", script, "sh", str(queue), str(out)], check=True)
    return time.perf_counter() - t0


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--total-mb", type=float, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args(argv)
    if shutil.which("gzip") is None:
        print("gzip not found on PATH", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-archive-", dir=args.dir) as tmp:
        work = Path(tmp)
        src = work / "src"
        src.mkdir()
        t0 = time.perf_counter()
        total = generate(src, args.files, int(args.total_mb * 1024 * 1024))
        print(
            f"generated {args.files} files, {total / 1e6:.1f} MB "
            f"in {time.perf_counter() - t0:.1f} s ({src})"
        )
        times: dict[str, list[float]] = {"archive": [], "gzip loop": []}
        for i in range(args.runs):
            order = [("archive", run_archive), ("gzip loop", run_gzip_loop)]
            if i % 2:
                order.reverse()
            for label, fn in order:
                elapsed = fn(src, work)
                times[label].append(elapsed)
                print(
                    f"run {i + 1}: {label:9s} {elapsed:7.2f} s  {total / 1e6 / elapsed:7.1f} MB/s"
                )
        arch_size, gz_size = _tree_size(work / "archive"), _tree_size(work / "gzout")
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"median archive:   {med['archive']:.2f} s, output {arch_size / 1e6:.1f} MB "
              f"(ratio {total / arch_size:.2f}:1)")  # fmt: skip
        print(f"median gzip loop: {med['gzip loop']:.2f} s, output {gz_size / 1e6:.1f} MB "
              f"(ratio {total / gz_size:.2f}:1)")  # fmt: skip
        print(f"ratio archive vs gzip loop: {med['archive'] / med['gzip loop']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
