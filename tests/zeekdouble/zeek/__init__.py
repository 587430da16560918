"""A test double for the ``zeek`` executable (pretends to be Zeek 8.2.2).

zeek-mgmt's agent starts cluster nodes exactly as it would start real Zeek
(behaviour.md §8): ``CLUSTER_NODE=<name>``, ``ZEEKPATH`` with the layout
directory first, cwd ``<state>/nodes/<name>``, and a command line such as::

    zeek [-i <iface>] -U .status [-C] policy/frameworks/cluster/backend/broker \\
        [scripts...] [name=value...]

This program honours that interface and fails the way Zeek fails, so the agent
cannot tell it from the real thing. Everything it prints, and the order in
which it prints it, follows Zeek 8.2.2's sources (``src/zeek-setup.cc``,
``src/Options.cc``, ``src/Reporter.cc``, ``src/scan.l``, ``src/RunState.cc``,
``scripts/base/frameworks/cluster/{__load__,main}.zeek``).

Startup, in Zeek's order
------------------------
1. Command line (``getopt_long`` semantics, options may follow scripts).
   ``-v/--version`` prints ``<argv0> version 8.2.2`` and exits 0; ``-h/--help``
   prints the usage and exits 0. An unknown long option prints
   ``ERROR: Unrecognized option --x`` and an unknown short option (glibc quirk
   kept) ``ERROR: Option -x requires an argument.``, then
   ``Try '<argv0> --help' for more information.``; exit 1. No status file yet.
2. ``-U FILE``: ``INITIALIZING [main]`` (each write truncates and rewrites).
3. Script parsing. With ``CLUSTER_NODE`` set (non-empty), the cluster
   framework loads ``cluster-layout`` from ``ZEEKPATH``; when it is missing:
   ``fatal error in <share>/base/frameworks/cluster/__load__.zeek, line 36:
   can't find cluster-layout``. The layout is parsed (the subset of Zeek
   written by zeekctl and by the agent, behaviour.md §8.2); a syntax error
   prints ``error in <file>, line <n>: syntax error, at or near "<tok>"``.
   Then every script on the command line must resolve on ``ZEEKPATH``
   (``<dir>/<s>.zeek``, ``<dir>/<s>``, or ``<dir>/<s>/__load__.zeek``),
   otherwise ``fatal error: can't find <s>``. ``@load`` lines inside scripts
   that exist on disk are followed recursively (a missing one is
   ``fatal error in <file>, line <n>: can't find <x>``). Zeek's own scripts
   (``base/...``, ``policy/...``, ``frameworks/...``, ``protocols/...``,
   ``misc/...``, ``tuning/...``, ``local``, ...) are pretended to exist,
   except unknown cluster backends under ``.../cluster/backend/``.
4. ``-r FILE`` / ``-i IFACE``: a missing trace is
   ``fatal error: problem with trace file F (unable to open F: No such file or
   directory)``; an interface that is not in ``/sys/class/net`` (``any`` is
   accepted, as with libpcap) is ``fatal error: problem with interface I
   (pcap_error: No such device exists (pcap_activate))``; a good one prints
   ``listening on I``. (No capability check: real Zeek would also need
   CAP_NET_RAW.)
5. ``zeek_init``: a ``CLUSTER_NODE`` that is not in ``Cluster::nodes`` gives
   ``error in <share>/base/frameworks/cluster/main.zeek, line 421: '<n>' is
   not a valid node in the Cluster::nodes configuration``; a node without a
   cluster backend script gives the ``Cluster::backend is
   Cluster::CLUSTER_BACKEND_NONE`` fatal error; any error then ends in
   ``fatal error: errors occurred while initializing``.
6. ``RUNNING [run_loop]`` when there is something to run (a cluster node, an
   interface, a trace, or ``exit_only_after_terminate``); otherwise Zeek
   terminates right after initialisation (exit 0). With no script, option,
   interface or trace at all, Zeek first reads a script from stdin (as here).

Every fatal error writes ``TERMINATED [fatal_error]`` to the status file and
exits 1; script errors (syntax) exit 1 leaving ``TERMINATED [atexit]``.

Signals
-------
Until the run loop starts, SIGTERM/SIGINT have their default action (the
process dies by the signal, as Zeek does while it parses scripts). In the run
loop, SIGTERM/SIGINT write ``TERMINATING [sig_handler]``, print ``received
termination signal`` to stderr and shut down cleanly through
``TERMINATING [received termination signal]``, ``[done_with_network]``,
``[delete_run]``, ``[terminate_zeek]`` to ``TERMINATED [atexit]``; exit 0.
SIGHUP only writes ``TERMINATING [sig_handler]`` and keeps running (Zeek's
quirk).

Test knobs (environment variables; none of them changes the interface)
----------------------------------------------------------------------
``ZEEK_DOUBLE_START_DELAY``
    Seconds spent "parsing scripts" (status ``INITIALIZING``) before the
    checks of step 3 run. Default 0.
``ZEEK_DOUBLE_CRASH_AFTER``
    Seconds after ``RUNNING`` after which the node crashes: it prints
    ``ZEEK_DOUBLE_CRASH_MESSAGE`` to stderr (default ``fatal error: simulated
    crash (ZEEK_DOUBLE_CRASH_AFTER)``), writes ``TERMINATED [fatal_error]`` and
    exits with ``ZEEK_DOUBLE_EXIT_CODE`` (default 1). Unset: never crashes.
``ZEEK_DOUBLE_CRASH_SIGNAL``
    With ``ZEEK_DOUBLE_CRASH_AFTER``: die by this signal instead (name such as
    ``SEGV``/``SIGABRT`` or a number), leaving the status file at ``RUNNING``
    like a real crash.
``ZEEK_DOUBLE_EXIT_CODE``
    Exit code of the simulated crash. Default 1.
``ZEEK_DOUBLE_IGNORE_SIGTERM``
    ``1``: a hung shutdown. SIGTERM still writes ``TERMINATING [sig_handler]``
    (Zeek's handler runs) but the process never exits; only SIGKILL (or SIGINT)
    ends it.
``ZEEK_DOUBLE_STDOUT_LINES`` / ``ZEEK_DOUBLE_STDERR_LINES``
    Print N lines (``zeek-double stdout line <i>`` / ``... stderr line <i>``)
    to stdout / stderr once running (then the record gets ``printed: true``).
    Default 0. As in Zeek, stdout on a file is fully buffered (it reaches the
    file at exit) unless the management node script made it line-buffered.
``ZEEK_DOUBLE_BLOCK_IN_INIT``
    A line of text: plays a ``zeek_init`` handler that prints it on stdout and
    then loops forever in script code. The status stays ``INITIALIZING``
    (record phase ``blocked_in_zeek_init``); SIGTERM/SIGINT/SIGHUP only write
    ``TERMINATING [sig_handler]`` (Zeek's handlers are installed before
    ``zeek_init``, but the loop never checks their flag): only SIGKILL ends it.
``ZEEK_DOUBLE_RECORD``
    A directory. The double writes ``<CLUSTER_NODE or pid>.json`` there
    (atomically, at start, when running, on each signal and at exit) with its
    argv, executable, cwd, pid, ppid, ``CLUSTER_NODE``, ``ZEEKPATH``, the whole
    environment, parsed options, resolved scripts, the parsed layout, the
    phase, received signals and the exit code; and appends the first record of
    every launch to ``<name>.launches.jsonl``.
``ZEEK_DOUBLE_PREFIX``
    The pretend install prefix used in messages (``<prefix>/share/zeek/...``).
    Default: the parent of the directory holding the executable.
``ZEEK_DOUBLE_STRICT_ZEEKPATH``
    ``1``: Zeek's own scripts only resolve through ``<prefix>/share/zeek``,
    ``<prefix>/share/zeek/policy`` and ``<prefix>/share/zeek/site`` entries on
    ``ZEEKPATH`` (real Zeek cannot even find ``base/init-bare.zeek`` without
    them); an unset ``ZEEKPATH`` is Zeek's default path under the prefix.
    Default: they always resolve, and an unset ``ZEEKPATH`` means ``.``.

``ZEEK_DOUBLE_ROTATE_INTERVAL``
    Seconds; plays ``redef Log::default_rotation_interval``. Default: the role
    scripts' value, 1 hr on the logging node and 24 hrs elsewhere.
``ZEEK_DOUBLE_LOGS``
    Comma-separated log paths the logging node writes. Default ``conn,dns``.
``ZEEK_DOUBLE_IDS``
    A JSON object of extra globals for get_id_value (``null``: declared but
    without a value, answered ``no ID value``).
``ZEEK_DOUBLE_DROP_DISPATCHES``
    The number of first ``node_dispatch_request`` events the node never sees, as
    ZeroMQ's proxy drops what is published before a subscription reached it.

The management node script (``zeek-mgmt-node``)
------------------------------------------------
When a script file named ``zeek-mgmt-node.zeek`` is loaded (zeek-mgmt's agent
loads ``mgmt/scripts/zeek-mgmt-node.zeek`` last), the double does what that
script makes Zeek 8.2.2 do:

* Output: stdout and stderr become line-buffered (the script's ``set_buf``), so
  each line reaches its file at once.
* Management settings: where the ``zeek-mgmt-settings.zeek`` it loads itself
  loads ``policy/frameworks/management/agent/config``, ``get_id_value`` knows
  a few of the framework's constants and every ``redef <id> = <constant>;`` of
  that file (strings, bools, ports, intervals, enums, record constructors).

* Node channel: before ``RUNNING`` (in ``zeek_init``) it listens on
  ``127.0.0.1:$ZEEK_MGMT_NODE_WEBSOCKET_PORT`` with Zeek's Broker WebSocket JSON
  v1 protocol (handshake -> ack, data messages, prefix subscriptions), is
  subscribed to ``zeek/management/node/<node>``, and answers
  ``Management::Node::API::node_dispatch_request(reqid, action, nodes)`` for
  itself (silent when ``nodes`` names others) with
  ``node_dispatch_response(reqid, Result)`` on
  ``zeek/management/node/<node>/response``, with Zeek's error strings and a
  small table of globals (``Cluster::node``, ``LogAscii::use_json``,
  ``Log::all_streams`` shortened, ``Log::default_rotation_interval``, ...).
  A port in use prints a warning and the node runs on without the channel.
* Logs and rotation, on the logging node only (the logger, or the manager
  when ``Cluster::manager_is_logger``): ``ZEEK_DOUBLE_LOGS`` files in the
  cwd, each with a ``.shadow.<path>.log``; every rotation interval (aligned to
  multiples of it) and at clean shutdown they move to
  ``$ZEEK_MANAGEMENT_SPOOL_DIR/log-queue/<path>__<open>__<close>__.log``
  (``%Y-%m-%d-%H-%M-%S``, local time; ``log_suffix=<node>__`` is added when
  there are several loggers). Leftovers of a crashed run are rotated at
  start-up (open = the shadow's ctime, close = the log's mtime).

The double is self-contained: it has its own tiny Broker JSON codec rather
than importing ``mgmt.broker``, so that a codec bug cannot hide on both sides
of the wire. It needs the ``websockets`` package only for the node channel
(from the interpreter's site-packages; ``-I`` keeps those).

Not implemented (yet): plugins (``X::Y`` arguments), supervisor mode (``-j``),
``-I``/``-N``/``-X``, Broker peering between nodes. Unsupported but valid
input is reported with a ``zeek-double:`` prefix so it is never mistaken for
a Zeek error. Python >= 3.11.

The installed ``zeek`` (``tests/zeekdouble/fixture.py`` writes it) puts this package's
directory on ``sys.path`` and calls ``zeek.process.run``. ``process`` is the process
(``ZeekDouble``), in Zeek's order; ``cmdline``, ``report``, ``layout``, ``scripts``,
``knobs``, ``channel``, ``values`` and ``rotation`` are its parts. Modules import each
other relatively, so the tests can import them as ``tests.zeekdouble.zeek.*``.
"""

ZEEK_VERSION = "8.2.2"
