"""Log archival: zeek-archiver's contract, built in.

* :mod:`mgmt.archive.names` -- pure: rotated-log and archive file names.
* :mod:`mgmt.archive.engine` -- the archiving of a log queue (streamed through
  :class:`mgmt.persist.statefile.AtomicFile`).
* :mod:`mgmt.archive.cli` -- ``zeek-mgmt archive``, zeek-archiver's command line.
"""
