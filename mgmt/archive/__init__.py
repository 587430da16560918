"""Log archival: zeek-archiver's contract, built in.

* :mod:`mgmt.archive.names` -- pure: rotated-log and archive file names.
* :mod:`mgmt.archive.engine` -- the archiving of a log queue and ``zeek-mgmt archive``.
"""
