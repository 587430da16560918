"""Identifier types shared by every layer.

They are ``NewType``s over ``str``: free at run time, but mypy keeps a node name from being
passed where an instance name is expected.
"""

from typing import NewType

#: A cluster node name, e.g. ``worker-01`` (``Management::Node$name``).
NodeName = NewType("NodeName", str)
#: An instance (agent) name, e.g. ``agent-testbox`` (``Management::Instance$name``).
InstanceName = NewType("InstanceName", str)
#: A request id: the client's ``uuid1()`` string or one we generate for a child request.
RequestId = NewType("RequestId", str)
#: A Broker topic, e.g. ``zeek/management/controller``.
Topic = NewType("Topic", str)
