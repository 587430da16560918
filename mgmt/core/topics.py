"""The Management framework's Broker topics: one definition of each.

Zeek's scripts name them in ``policy/frameworks/management/{controller,agent,node}/config.zeek``
(``Management::Controller::topic``, ``Management::Agent::topic_prefix``,
``Management::Node::node_topic``). zeek-client publishes and subscribes on
:data:`CONTROLLER_TOPIC` only.
"""

from __future__ import annotations

#: Clients <-> controller: requests from clients, responses to every subscribed client.
CONTROLLER_TOPIC = "zeek/management/controller"
#: Controller <-> agents: each agent listens on ``<prefix>/<name>`` and answers there.
AGENT_TOPIC_PREFIX = "zeek/management/agent"
#: Agent <-> its nodes: each node listens on ``<prefix>/<name>``.
NODE_TOPIC_PREFIX = "zeek/management/node"


def agent_topic(name: str) -> str:
    """The topic agent ``name`` listens and answers on: ``zeek/management/agent/<name>``."""
    return f"{AGENT_TOPIC_PREFIX}/{name}"


def node_topic(name: str) -> str:
    """The topic node ``name`` listens on: ``zeek/management/node/<name>``."""
    return f"{NODE_TOPIC_PREFIX}/{name}"


def node_response_topic(name: str) -> str:
    """The topic node ``name`` answers on: ``zeek/management/node/<name>/response``."""
    return f"{node_topic(name)}/response"
