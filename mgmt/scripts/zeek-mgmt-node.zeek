##! zeek-mgmt's management node script. The zeek-mgmt agent copies it into its layout
##! directory and every cluster node it starts loads it last, after the node's own
##! scripts (behaviour.md §8.4). Nodes run without Zeek's Supervisor, so this script
##! restores what the Supervisor-based management framework provides:
##!
##! * Line-buffered stdout and stderr, as the Supervisor sets them up in a node
##!   (``setlinebuf`` in src/supervisor/Supervisor.cc), so each line reaches the node's
##!   ``stdout``/``stderr`` file at once, even if the node then blocks.
##! * The Management framework's settings (``Management::...``), from
##!   ``zeek-mgmt-settings.zeek``, which the agent writes next to the cluster layout: it
##!   loads Zeek's management configuration scripts where this Zeek has them (as Zeek's
##!   own nodes do) and redefines them to the values the zeek-mgmt daemons use.
##! * Log rotation as for supervised nodes (behaviour.md §6.8): rotated logs go to
##!   <spool>/log-queue, named for zeek-archiver on the logging node, with no zeekctl
##!   post-processor; leftover logs of a crashed run are rotated at start-up.
##! * The cluster backend's settings (ZeroMQ's proxy endpoints), from
##!   ``zeek-mgmt-backend.zeek``, which the agent writes next to the cluster layout.
##! * The node channel for get-id-value and netstats (behaviour.md §7, §8.6): a WebSocket server on
##!   127.0.0.1:$ZEEK_MGMT_NODE_WEBSOCKET_PORT (Zeek >= 7.2) answering
##!   Management::Node::API::node_dispatch_request with node_dispatch_response on
##!   zeek/management/node/<node>/response. A node without a port (a ZeroMQ logger)
##!   only subscribes: requests reach it through another node's server.
##!
##! It deliberately does not load policy/frameworks/management/node: that peers with a
##! Broker-speaking agent and logs through Management::Log, which needs a supervised
##! process. Only the Node API declarations are loaded (node/api.zeek loads nothing but
##! management/types.zeek, which has no @load and no handlers, so it is safe here), and
##! the configuration scripts that zeek-mgmt-settings.zeek loads (agent/config,
##! node/config and what they load: constants, types and functions; the one zeek_init
##! handler among them, Management::Log's, does nothing outside a supervised process).

module ZeekMgmt;

# --- Output as under Zeek's Supervisor ------------------------------------------------

# A node's stdout is a file, so C would buffer it fully: a node that prints and then
# blocks in script code would show nothing. open("-") wraps the process's stdout FILE*
# and open("/dev/stderr") its stderr FILE* (File's constructor maps the name, no new
# stream is opened); set_buf(f, F) makes the stream line-buffered (setvbuf _IOLBF).
# The wrappers go away at once, which never closes the streams (File::Close skips
# stdin, stdout and stderr). As global initializers these run while the script is
# parsed, before any zeek_init handler.
global stdout_line_buffered = set_buf(open("-"), F);
global stderr_line_buffered = set_buf(open("/dev/stderr"), F);

# --- The Management framework's settings and the cluster backend's -------------------

@load ./zeek-mgmt-settings
@load ./zeek-mgmt-backend

export {
	## The spool directory (ZEEK_MANAGEMENT_SPOOL_DIR, set by the agent).
	const spool_dir = getenv("ZEEK_MANAGEMENT_SPOOL_DIR") &redef;

	## The node channel's port: a bare port number (ZEEK_MGMT_NODE_WEBSOCKET_PORT, set by
	## the agent). Empty: the node does not listen.
	const websocket_port = getenv("ZEEK_MGMT_NODE_WEBSOCKET_PORT") &redef;

	## Topic prefix of the node channel; the node subscribes to <prefix><Cluster::node>.
	const node_topic_prefix = "zeek/management/node/" &redef;
}

# --- Log rotation (behaviour.md §6.8, §8.4) -------------------------------------------

# No zeekctl helper scripts (archive-log / delete-log): the agent archives the queue.
redef Log::default_rotation_postprocessor_cmd = "";
redef Log::default_rotation_dir = spool_dir == "" ? "log-queue" : spool_dir + "/log-queue";
redef LogAscii::enable_leftover_log_rotation = T;

# archiver_rotation_format_func exists where base/frameworks/cluster/nodes/logger.zeek
# was loaded: on loggers, and on a manager that is also the logger.
@ifdef ( archiver_rotation_format_func )
redef Log::rotation_format_func = archiver_rotation_format_func;
@endif

# --- Node channel (behaviour.md §7 "Dispatch", §8.6) ----------------------------------

@if ( Version::at_least("7.2") )

@if ( ! Version::at_least("9.1") )
# Zeek's own declarations of the Node API events and Management::Result.
@load policy/frameworks/management/node/api
@endif

@ifndef ( Management::Result )
# The management scripts are not part of this Zeek: declare the record with Zeek's
# field order (the wire format is positional; wire-protocol.md §4.9).
module Management;

export {
	type Result: record {
		reqid: string;
		success: bool &default=T;
		instance: string &optional;
		data: any &optional;
		error: string &optional;
		node: string &optional;
	};
}
@endif

@ifndef ( Management::Node::API::node_dispatch_request )
module Management::Node::API;

export {
	global node_dispatch_request: event(reqid: string, action: vector of string,
	    nodes: set[string] &default=set());
	global node_dispatch_response: event(reqid: string, result: Management::Result);
}
@endif

module ZeekMgmt;

## Fills ``res`` for ``get_id_value <id>``; ``args`` are the arguments after the command.
function get_id_value(args: vector of string, res: Management::Result)
	{
	if ( |args| == 0 )
		{
		res$success = F;
		res$error = "get_id_value expects name of global identifier";
		return;
		}

	local val = lookup_ID(args[0]);

	# lookup_ID() signals failure with these two strings; report them without brackets.
	if ( type_name(val) == "string" )
		{
		local text: string = val;
		if ( text == "<unknown id>" )
			{
			res$success = F;
			res$error = "unknown id";
			return;
			}
		if ( text == "<no ID value>" )
			{
			res$success = F;
			res$error = "no ID value";
			return;
			}
		}

	res$data = to_json(val);
	}

## Fills ``res`` for ``get_net_stats`` (zeek-mgmt netstats): the packet counters of
## get_net_stats() and the current network time, as JSON.
function get_net_stats_json(res: Management::Result)
	{
	local ns = get_net_stats();
	res$data = to_json([$pkts_recvd=ns$pkts_recvd, $pkts_dropped=ns$pkts_dropped,
	    $pkts_link=ns$pkts_link, $bytes_recvd=ns$bytes_recvd,
	    $network_time=time_to_double(network_time())]);
	}

event Management::Node::API::node_dispatch_request(reqid: string, action: vector of string,
    nodes: set[string])
	{
	# A dispatch naming other nodes only is not for us: stay silent, as Zeek's nodes do.
	if ( |nodes| > 0 && Cluster::node !in nodes )
		return;

	local res = Management::Result($reqid=reqid, $node=Cluster::node);

	if ( |action| == 0 )
		{
		res$success = F;
		res$error = "no dispatch arguments provided";
		}
	else if ( action[0] == "get_id_value" )
		get_id_value(action[1:], res);
	else if ( action[0] == "get_net_stats" )
		get_net_stats_json(res);
	else
		{
		res$success = F;
		res$error = fmt("dispatch %s unknown", action[0]);
		}

	Cluster::publish(node_topic_prefix + Cluster::node + "/response",
	    Management::Node::API::node_dispatch_response, reqid, res);
	}

event zeek_init() &priority=-10
	{
	if ( Cluster::node == "" )
		return;

	# Subscribed even without a server of our own: on ZeroMQ a logger cannot listen
	# (Zeek 8.2's WebSocket server binds the log endpoint a second time), and the agent
	# reaches it through another node's WebSocket server and the ZeroMQ proxy.
	Cluster::subscribe(node_topic_prefix + Cluster::node);

	if ( websocket_port == "" )
		return;

	local p = count_to_port(to_count(websocket_port), tcp);
@if ( Version::at_least("8.0") )
	local opts = Cluster::WebSocketServerOptions($listen_addr=127.0.0.1, $listen_port=p);
@else
	local opts = Cluster::WebSocketServerOptions($listen_host="127.0.0.1", $listen_port=p);
@endif

	if ( ! Cluster::listen_websocket(opts) )
		{
		Reporter::warning(fmt("zeek-mgmt: cannot listen on 127.0.0.1:%s; get-id-value is unavailable",
		    p));
		return;
		}
	}

@else

event zeek_init()
	{
	Reporter::warning(fmt("zeek-mgmt: get-id-value is unavailable: Zeek %s has no Cluster::listen_websocket (needs 7.2 or later)",
	    zeek_version()));
	}

@endif
