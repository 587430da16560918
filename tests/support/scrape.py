"""Scraping a metrics endpoint over HTTP and parsing it with ``prometheus_client``."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import MS

#: Sample name -> {sorted (label, value) pairs: sample value}.
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def http_get(url: str, accept: str = "") -> tuple[int, str, str]:
    """GET ``url``: status, content type, body (also for 4xx answers)."""
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=10_000 * MS) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def scrape(url: str) -> Samples:
    """The samples of a Prometheus text exposition at ``url``, parsed by prometheus_client."""
    status, _, text = http_get(url)
    assert status == 200, (status, text)
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out
