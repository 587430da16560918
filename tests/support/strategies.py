"""Hypothesis strategies for Broker values, Management records and events.

Shared by the codec, records, events and cross-check tests. ``zc_safe=True`` restricts
generation to what zeek-client 1.5.0 can represent (wire spec §2.2): ports 1-65535, no
``us`` or negative timespans, naive millisecond timestamps, ...
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

from hypothesis import strategies as st

from mgmt.broker import data as bd
from mgmt.broker import events as be
from mgmt.broker import records as br

INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)
# Zeek identifiers, node names, paths: keep them printable but otherwise arbitrary.
TEXT = st.text(max_size=12)
NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=10)


def ports(zc_safe: bool = False) -> st.SearchStrategy[bd.Port]:
    low = 1 if zc_safe else 0
    return st.builds(bd.Port, st.integers(low, 65535), st.sampled_from(list(bd.Proto)))


def record_ports(zc_safe: bool = False) -> st.SearchStrategy[bd.Port]:
    """Ports inside records. zeek-client keeps only the number (it means TCP)."""
    if zc_safe:
        return st.builds(bd.Port, st.integers(1, 65535), st.just(bd.Proto.TCP))
    return ports()


def timespans(zc_safe: bool = False) -> st.SearchStrategy[bd.Timespan]:
    if zc_safe:
        # zeek-client: no "us", no sign; it converts to timedelta (microsecond precision,
        # so ns values must be whole microseconds to survive).
        return st.one_of(
            st.builds(bd.Timespan, st.integers(0, 10**9).map(lambda v: v * 1000), st.just("ns")),
            st.builds(
                bd.Timespan, st.integers(0, 10**6), st.sampled_from(["ms", "s", "min", "h", "d"])
            ),
        )
    return st.builds(bd.Timespan, st.integers(-(2**40), 2**40), st.sampled_from(list(bd._UNIT_NS)))


def timestamps() -> st.SearchStrategy[datetime.datetime]:
    """Naive UTC datetimes at millisecond precision (what Broker's text form carries)."""
    return st.datetimes(
        min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)
    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


def subnets() -> st.SearchStrategy[bd.IPNetwork]:
    v4 = st.tuples(st.ip_addresses(v=4), st.integers(0, 32))
    v6 = st.tuples(st.ip_addresses(v=6), st.integers(0, 128))
    return st.one_of(v4, v6).map(lambda t: ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))


def _scalar_choices(zc_safe: bool, sortable: bool) -> list[st.SearchStrategy[Any]]:
    choices = [
        st.none(),
        st.booleans(),
        UINT64.map(bd.Count),
        INT64,
        st.floats(allow_nan=False, allow_infinity=False),
        timespans(zc_safe),
        st.text(max_size=20),
        st.text(min_size=1, max_size=20).map(bd.EnumValue),
        st.ip_addresses(),
        ports(zc_safe),
    ]
    if not sortable:
        choices += [timestamps(), subnets()]
    return choices


def scalars(zc_safe: bool = False) -> st.SearchStrategy[Any]:
    """The 12 non-container Broker types."""
    return st.one_of(*_scalar_choices(zc_safe, sortable=False))


def values(zc_safe: bool = False, max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary nested Broker values of all 15 types.

    With ``zc_safe``, set elements and table keys are typed like Zeek's (one scalar type
    per container, or 2-tuples of it as multi-index keys) and never timestamps or subnets:
    zeek-client sorts them with ``<``, which raises for a Timestamp next to another type
    and for IPv4 next to IPv6 subnets. (Typed keys also keep ``Count(1)`` and ``1`` from
    meeting in one set, which Python equality would merge.)
    """
    key_types = _scalar_choices(zc_safe, sortable=True)

    def typed_keys(elem: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(elem, st.tuples(elem, elem))

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        if not zc_safe:
            sets = st.lists(children, max_size=4).map(bd.BrokerSet)
            tables = st.lists(st.tuples(children, children), max_size=4).map(bd.Table)
        else:
            kinds = st.sampled_from(key_types)
            sets = kinds.flatmap(lambda e: st.lists(typed_keys(e), max_size=4)).map(bd.BrokerSet)
            tables = kinds.flatmap(
                lambda e: st.lists(st.tuples(typed_keys(e), children), max_size=4)
            ).map(bd.Table)
        return st.one_of(st.lists(children, max_size=4).map(tuple), sets, tables)

    return st.recursive(scalars(zc_safe), extend, max_leaves=max_leaves)


# --------------------------------------------------------------------------------------
# Records


def options() -> st.SearchStrategy[br.Option]:
    return st.builds(br.Option, TEXT, TEXT)


def instances(zc_safe: bool = False) -> st.SearchStrategy[br.Instance]:
    return st.builds(br.Instance, NAMES, st.ip_addresses(), st.none() | record_ports(zc_safe))


def nodes(zc_safe: bool = False, with_options: bool = True) -> st.SearchStrategy[br.Node]:
    opts = st.none()
    if with_options:
        opts = opts | st.lists(options(), max_size=3, unique=True).map(tuple)
    return st.builds(
        br.Node,
        name=NAMES,
        instance=NAMES,
        role=st.sampled_from(list(br.ClusterRole)),
        state=st.sampled_from(list(br.State)),
        p=st.none() | record_ports(zc_safe),
        scripts=st.none() | st.lists(TEXT, max_size=3).map(tuple),
        options=opts,
        interface=st.none() | TEXT,
        cpu_affinity=st.none() | INT64,
        env=st.dictionaries(TEXT, TEXT, max_size=3),
        metrics_port=st.none() | record_ports(zc_safe),
    )


def configurations(
    zc_safe: bool = False, with_options: bool = True
) -> st.SearchStrategy[br.Configuration]:
    return st.builds(
        br.Configuration,
        id=TEXT,
        instances=st.lists(instances(zc_safe), max_size=3, unique_by=lambda i: i.name).map(tuple),
        nodes=st.lists(nodes(zc_safe, with_options), max_size=3, unique_by=lambda n: n.name).map(
            tuple
        ),
    )


def node_statuses(zc_safe: bool = False) -> st.SearchStrategy[br.NodeStatus]:
    return st.builds(
        br.NodeStatus,
        node=NAMES,
        state=st.sampled_from(list(br.State)),
        mgmt_role=st.sampled_from(list(br.Role)),
        cluster_role=st.sampled_from(list(br.ClusterRole)),
        pid=st.none() | INT64,
        p=st.none() | record_ports(zc_safe),
        metrics_port=st.none() | record_ports(zc_safe),
    )


def node_outputs() -> st.SearchStrategy[br.NodeOutputs]:
    return st.builds(br.NodeOutputs, st.text(max_size=40), st.text(max_size=40))


def results(
    data: st.SearchStrategy[Any] | None = None, zc_safe: bool = False
) -> st.SearchStrategy[br.Result]:
    """Results whose ``data`` is a generic Broker value (decodes back to itself)."""
    return st.builds(
        br.Result,
        reqid=TEXT,
        success=st.booleans(),
        instance=st.none() | NAMES,
        data=values(zc_safe, max_leaves=8) if data is None else data,
        error=st.none() | TEXT,
        node=st.none() | NAMES,
    )


# --------------------------------------------------------------------------------------
# Events: one strategy per argument codec of the catalogue.


def _arg_strategies(zc_safe: bool) -> dict[int, st.SearchStrategy[Any]]:
    return {
        id(be.STRING): TEXT,
        id(be.BOOL): st.booleans(),
        id(be.COUNT): UINT64.map(bd.Count),
        id(be.STRING_SET): st.lists(TEXT, max_size=3).map(bd.BrokerSet),
        id(be.STRING_VECTOR): st.lists(TEXT, max_size=3).map(tuple),
        id(be.RESULT): results(zc_safe=zc_safe),
        id(be.RESULTS): st.lists(results(zc_safe=zc_safe), max_size=3).map(tuple),
        id(be.CONFIGURATION): configurations(zc_safe),
        id(be.NODE): nodes(zc_safe),
        id(be.STATE): st.sampled_from(list(br.State)),
        id(be.NODE_OUTPUTS): node_outputs(),
    }


_ARGS = {False: _arg_strategies(False), True: _arg_strategies(True)}


def event_specs() -> list[be.EventSpec]:
    return list(be._BY_NAME.values())


def events_of(spec: be.EventSpec, zc_safe: bool = False) -> st.SearchStrategy[Any]:
    """Instances of one catalogue event with arbitrary arguments."""
    args = _ARGS[zc_safe]
    return st.tuples(*(args[id(c)] for c in spec.args)).map(lambda a: spec.cls(*a))


def events() -> st.SearchStrategy[Any]:
    return st.sampled_from(event_specs()).flatmap(events_of)


# --------------------------------------------------------------------------------------
# Arbitrary, mostly-wrong JSON that looks enough like Broker to reach deep code paths.

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.sampled_from(
        ["2149/tcp", "0/?", "10.0.0.0/8", "::1", "1500ms", "2022-04-10T07:00:00.000", "x::Y"]
        + ["Management::RUNNING", "Supervisor::WORKER", "-5us", "9999-12-31T23:59:59-05:00"]
    ),
)
TAGS = st.one_of(
    st.sampled_from([t.value for t in bd.DataType] + ["bogus"]),
    st.sampled_from([[], {}, 1, None, ["vector"]]),
)


def brokerish_json(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(st.text(max_size=5), children, max_size=3),
            st.fixed_dictionaries({"@data-type": TAGS, "data": children}),
            st.fixed_dictionaries({"key": children, "value": children}),
        )

    return st.recursive(JSON_SCALARS, extend, max_leaves=max_leaves)


def brokerish_events() -> st.SearchStrategy[Any]:
    """Event envelopes with catalogue names and arbitrary arguments."""
    names = st.sampled_from([s.name for s in event_specs()] + ["No::such_event"])
    return st.builds(
        lambda n, a: be.raw_event_to_json(n, a), names, st.lists(brokerish_json(15), max_size=5)
    )
