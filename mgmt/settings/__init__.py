"""Settings of the controller and agent daemons: one model, four sources, every value traced.

* :mod:`mgmt.settings.model` -- pure: the frozen settings of each role (what the daemons
  and their state machines take), :class:`~mgmt.settings.model.Endpoint`.
* :mod:`mgmt.settings.kinds` -- value kinds: parsing from every source, the value rules.
* :mod:`mgmt.settings.schema` -- the settings table: kind, default, env var and flag of
  every setting (the one place defaults live).
* :mod:`mgmt.settings.zeek` -- the Zeek installation in use, for directory defaults.
* :mod:`mgmt.settings.sources` -- loading: file, environment, flags; precedence.
* :mod:`mgmt.settings.flags` -- the command line: ``--settings-file``, role flags, ``--set``.
* :mod:`mgmt.settings.show` -- ``zeek-mgmt daemon-settings``.
* :mod:`mgmt.settings.tls` -- TLS contexts built from settings.

This ``__init__`` imports nothing, so that the pure model does not pull in the loaders.
Import from the submodules.
"""
