"""The read-only status page: jobs live, projects with previews, job logs, health, files.

``create_app`` builds the Flask app; ``serve`` runs it under waitress until a stop event is
set; ``print_jobs`` is the terminal view of ``vidgen jobs``.
"""

from status.app import create_app
from status.health import BackendHealth, BackendProbe, backend_probe
from status.rejected import RejectedLister, RejectedListing, RejectedManifest
from status.server import serve
from status.terminal import print_jobs

__all__ = [
    "BackendHealth",
    "BackendProbe",
    "RejectedLister",
    "RejectedListing",
    "RejectedManifest",
    "backend_probe",
    "create_app",
    "print_jobs",
    "serve",
]
