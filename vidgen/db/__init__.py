"""The database: models and migrations (``models``), engines and sessions (``session``), every
status change (``jobs``, ``claims``), recording a manifest (``manifests``), the status page's
reads (``queries``) and file-name counters (``counters``). Callers import those modules."""
