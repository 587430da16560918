##! zeek-mgmt's management node script, loaded by every cluster node the zeek-mgmt agent
##! starts, after the node's own scripts (see behaviour.md §8.4).
##!
##! It restores what Zeek's Supervisor-based management framework sets up for supervised
##! nodes, which these unsupervised nodes would otherwise lack: log rotation into
##! <spool>/log-queue with the archiver naming scheme and no zeekctl post-processor.

module ZeekMgmt;

export {
	## The spool directory (ZEEK_MANAGEMENT_SPOOL_DIR, set by the agent).
	const spool_dir = getenv("ZEEK_MANAGEMENT_SPOOL_DIR") &redef;
}

# No zeekctl helper scripts (archive-log / delete-log): the agent archives the queue.
redef Log::default_rotation_postprocessor_cmd = "";
redef Log::default_rotation_dir = spool_dir == "" ? "log-queue" : spool_dir + "/log-queue";
redef LogAscii::enable_leftover_log_rotation = T;

@if ( Cluster::local_node_type() == Cluster::LOGGER ||
      ( Cluster::local_node_type() == Cluster::MANAGER && Cluster::manager_is_logger ) )
redef Log::rotation_format_func = archiver_rotation_format_func;
@endif
