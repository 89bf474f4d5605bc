"""The HTML pages: jobs (live), projects, a project, a job, the rejected manifests.

Each view calls one read function and renders its template; the filters registered here turn
read models into words (present.py) and recorded paths into ``/files/`` URLs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, render_template, request, url_for

from status import present
from status.api import page_arguments
from status.context import status_context
from status.health import folder_state
from vidgen.db.queries import get_job, get_project, list_jobs, list_projects
from vidgen.holds import current_holds

bp = Blueprint("pages", __name__)


@bp.app_template_filter("file_url")
def file_url(path: str | None) -> str | None:
    return status_context().file_roots.url_path(path)


bp.add_app_template_filter(present.when, "when")
bp.add_app_template_filter(present.duration, "duration")
bp.add_app_template_filter(present.percent, "percent")
bp.add_app_template_filter(present.media_kind, "media_kind")
bp.add_app_template_filter(present.pretty_json, "pretty_json")


@bp.get("/")
def jobs() -> str:
    page, per_page = page_arguments()
    job_page = list_jobs(status_context().database, page, per_page)
    # The JSON of the jobs this page shows, which live.js reads again when the first event
    # message could not carry them all.
    refresh = url_for("api.jobs", page=job_page.page, perPage=job_page.per_page)
    return render_template("jobs.html", page=job_page, live=True, refresh=refresh)


@bp.get("/projects")
def projects() -> str:
    found = list_projects(status_context().database)
    return render_template("projects.html", projects=found)


@bp.get("/projects/<project_name>")
def project(project_name: str) -> str:
    detail = get_project(status_context().database, project_name)
    if detail is None:
        abort(404, description="There is no project with this name.")
    refresh = url_for("api.project", project_name=project_name)
    return render_template("project.html", detail=detail, live=True, refresh=refresh)


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> str:
    context = status_context()
    found = get_job(context.database, job_id)
    if found is None:
        abort(404, description="There is no job with this id.")
    detail = present.shown_job(found, context.shown)
    now = datetime.now(UTC)
    return render_template(
        "job.html",
        detail=detail,
        stages=present.job_stages(detail, now),
        timings=present.job_timings(detail, now),
        live=True,
        refresh=url_for("api.job", job_id=job_id),
    )


@bp.get("/rejected")
def rejected() -> str:
    listing = status_context().rejected_lister()
    return render_template("rejected.html", listing=listing, inboxes=_inbox_names())


def _inbox_names() -> list[str]:
    settings = status_context().settings
    return [inbox.path.name for inbox in settings.inboxes]


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    context = status_context()
    holds = current_holds(context.settings, context.database).lines()
    return {"active_path": request.path, "inbox_outages": _inbox_outages(), "holds": holds}


def _inbox_outages() -> list[str]:
    """Inboxes vidgen cannot use now (a share unmounted, the network down): every page says
    so, since on a share nothing else would tell the people dropping files there."""
    settings = status_context().settings
    return [
        inbox.path.name
        for inbox in settings.inboxes
        if not folder_state(inbox.path, need_write=True)["ok"]
    ]
