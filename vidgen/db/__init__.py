"""The database: models and migrations (``models``), engines and sessions (``session``), every
status change (``jobs``, ``claims``), recording a manifest (``manifests``), the status page's
reads (``queries``, ``service_status``), file-name counters (``counters``) and the heartbeats of
running parts (``heartbeats``). Callers import those modules."""
