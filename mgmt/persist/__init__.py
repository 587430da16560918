"""Durable state: one atomic file writer and the TOML state stores built on it.

* :mod:`mgmt.persist.statefile` -- atomic, durable writes (temp file, fsync, rename, fsync
  of the directory) and schema-versioned TOML documents; leftover temporaries.
* :mod:`mgmt.persist.configtoml` -- a cluster ``Configuration`` as a TOML table.
* :mod:`mgmt.persist.controllerstore` -- the controller's staged/ready/deployed slots.
* :mod:`mgmt.persist.nodetable` -- the supervisor's node table, for adoption.
* :mod:`mgmt.persist.lock` -- one daemon per role and state directory.
"""
