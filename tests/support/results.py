"""Controller results as the client receives them, and the JSON a renderer prints."""

from __future__ import annotations

import json

from client.render import Rendered
from mgmt.broker.records import Result


def decoded(result: Result) -> Result:
    """A result as it arrives: encoded to Broker JSON and decoded again (generic data)."""
    return Result.from_json(result.to_json())


def loads(rendered: Rendered) -> object:
    """The JSON a rendering prints (which ends in a newline, as zeek-client's)."""
    assert rendered.text is not None and rendered.text.endswith("\n")
    return json.loads(rendered.text)
