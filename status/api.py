"""Read-only JSON under ``/api/``: the job list (paginated), a job, the projects, a project."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request

from status.context import status_context
from status.present import shown_job
from status.serialize import job_detail_json, page_json, project_detail_json, project_json
from vidgen.db.queries import get_job, get_project, list_jobs, list_projects

bp = Blueprint("api", __name__, url_prefix="/api")

DEFAULT_PER_PAGE = 50
# Far beyond any real job list, and small enough that the row offset of the last page stays a
# 64-bit number for the database (MAX_PER_PAGE rows a page).
MAX_PAGE = 1_000_000_000


def page_arguments() -> tuple[int, int]:
    """``?page=`` and ``?perPage=`` as numbers; anything else counts as absent, and a page
    beyond ``MAX_PAGE`` is that page (empty, like any page past the end)."""
    page = request.args.get("page", 1, type=int) or 1
    per_page = request.args.get("perPage", DEFAULT_PER_PAGE, type=int) or DEFAULT_PER_PAGE
    return min(max(page, 1), MAX_PAGE), per_page


@bp.get("/jobs")
def jobs() -> Response:
    page, per_page = page_arguments()
    return jsonify(page_json(list_jobs(status_context().database, page, per_page)))


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Response:
    context = status_context()
    detail = get_job(context.database, job_id)
    if detail is None:
        abort(404, description="There is no job with this id.")
    return jsonify(job_detail_json(shown_job(detail, context.shown), context.file_roots))


@bp.get("/projects")
def projects() -> Response:
    found = list_projects(status_context().database)
    return jsonify({"projects": [project_json(project) for project in found]})


@bp.get("/projects/<project_name>")
def project(project_name: str) -> Response:
    detail = get_project(status_context().database, project_name)
    if detail is None:
        abort(404, description="There is no project with this name.")
    return jsonify(project_detail_json(detail, status_context().file_roots))
