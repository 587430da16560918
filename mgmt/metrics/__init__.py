"""Prometheus metrics of the daemons (issue 13), with the ``prometheus_client`` library.

* :mod:`mgmt.metrics.endpoint` -- the HTTP endpoint a daemon serves on its optional
  ``metrics_port`` (``/metrics``, plus JSON documents such as the controller's
  ``/services.json``), on the daemon's event loop;
* :mod:`mgmt.metrics.requests` -- requests served and their latency, the same for both;
* the collectors of what each daemon knows, read at scrape time, live with the daemon:
  :mod:`mgmt.agent.metrics`, :mod:`mgmt.controller.metrics`.

Every metric is named ``zeek_mgmt_*`` and registered in the daemon's own
:class:`prometheus_client.CollectorRegistry` (never the library's global one).
"""
