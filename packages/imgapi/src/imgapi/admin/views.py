"""The admin pages: login, the list of requests, one request's detail, retry and delete."""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import anyio
from imgcore import (
    Engine,
    ImageError,
    ImageNotFoundError,
    ImgcoreError,
    OutOfRangeError,
    RequestInfo,
    RequestNotFoundError,
    RequestStateError,
    RequestStatus,
    StorageError,
)
from imgcore.engine import MAX_CLIENT, MAX_ID
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, Parameter, QueryParameter
from litestar.response import Redirect, Stream, Template
from litestar.types import ExceptionHandlersMap

from imgapi.admin.accounts import authenticate, end_session, start_session
from imgapi.admin.security import (
    ADMIN_PATH,
    SESSION_TOKEN,
    CsrfError,
    LoginRequiredError,
    check_csrf,
    csrf_token,
    safe_next,
)
from imgapi.admin.throttle import LoginLimits
from imgapi.form import PRESET_FIELD, WEBHOOK_FIELD, UploadForm, check_file_type, limited
from imgapi.problems import ProblemError, from_imgcore, problem_answer
from imgapi.routes.status import (
    MAX_PAGE,
    MAX_PER_PAGE,
    StatusOut,
    output_csv_download,
    read_status,
)
from imgapi.runtime import Runtime

__all__ = ["HANDLERS", "exception_handlers"]

log = logging.getLogger("imgapi.admin")

REQUESTS_PER_PAGE = 25
PRODUCTS_PER_PAGE = 50
#: Added to every failed login, whatever the cause: slows guessing, hides nothing.
FAILURE_DELAY = 0.3
LOGIN_ERROR = "Wrong username or password, or too many failed attempts: wait a while and retry."
TOO_MANY = "Too many login attempts from here or for this user: retry in {seconds} s."
_PAGE_HEADERS = {"Cache-Control": "no-store"}

AnyRequest = Request[Any, Any, State]


def _session(request: AnyRequest) -> dict[str, Any]:
    # Without a cookie, request.session is a new dict each time: install one to write to.
    session = request.scope.get("session")
    if not isinstance(session, dict):
        session = {}
        request.set_session(session)
    return session


def _flash(request: AnyRequest, message: str, kind: str = "info") -> None:
    _session(request).setdefault("flash", []).append([kind, message])


def _render(
    request: AnyRequest,
    name: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    session = _session(request)
    context.setdefault("admin", getattr(request.state, "admin", None))
    context.update(csrf_token=csrf_token(session), messages=session.pop("flash", []))
    return Template(
        name, context=context, status_code=status_code, headers={**_PAGE_HEADERS, **(headers or {})}
    )


async def _form(request: AnyRequest) -> dict[str, str]:
    form = await request.form()
    check_csrf(_session(request), form.get("csrf_token"))
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _username(request: AnyRequest) -> str:
    admin = getattr(request.state, "admin", None)
    return str(getattr(admin, "username", "?"))


# -- login ------------------------------------------------------------------------------------


@get("/login", opt={"public": True}, name="admin:login")
async def login_page(
    request: AnyRequest, next: Annotated[str, QueryParameter(required=False)] = ADMIN_PATH
) -> Template:
    """The login form."""
    return _render(request, "login.html", next=safe_next(next), error=None, username="")


@post("/login", opt={"public": True}, status_code=303)
async def login(
    request: AnyRequest,
    engine: NamedDependency[Engine],
    login_limits: NamedDependency[LoginLimits],
) -> Response[Any]:
    """Check the password; on success a new session, on failure the form again (after a pause).

    Over the attempts allowed per client address or per username, a 429 page with
    ``Retry-After``, at no hashing cost.
    """
    form = await _form(request)
    username = form.get("username", "")[:150]
    password = form.get("password", "")
    next_path = safe_next(form.get("next"))
    user = None
    if username and password:
        address = request.client.host if request.client else ""
        wait = login_limits.admit(address, username)
        if wait:
            log.warning(
                "admin login refused for %r from %s: too many attempts, retry in %d s",
                username,
                address,
                wait,
                extra={"admin_user": username},
            )
            return _render(
                request,
                "login.html",
                status_code=429,
                headers={"Retry-After": str(wait)},
                next=next_path,
                error=TOO_MANY.format(seconds=wait),
                username=username,
            )
        user = await authenticate(engine.database, username, password, limits=login_limits)
    if user is None:
        await anyio.sleep(FAILURE_DELAY)
        log.warning("admin login refused for %r", username, extra={"admin_user": username})
        return _render(request, "login.html", next=next_path, error=LOGIN_ERROR, username=username)
    # A new session (and CSRF token) at login: a session planted before it is worthless.
    token = await start_session(engine.database, user)
    request.set_session({SESSION_TOKEN: token, "csrf": secrets.token_urlsafe(32)})
    log.info("admin %s logged in", user.username, extra={"admin_user": user.username})
    return Redirect(next_path, status_code=303)


@post("/logout", status_code=303)
async def logout(request: AnyRequest, engine: NamedDependency[Engine]) -> Redirect:
    """End the session, in the database as well: a copy of the cookie is worthless after."""
    await _form(request)
    token = getattr(request.state, "session_token", None)
    if isinstance(token, str):
        await end_session(engine.database, token)
    log.info("admin %s logged out", _username(request), extra={"admin_user": _username(request)})
    request.clear_session()
    return Redirect(f"{ADMIN_PATH}/login", status_code=303)


# -- pages ------------------------------------------------------------------------------------


def _pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


@get("/", name="admin:requests")
async def requests_list(
    request: AnyRequest,
    engine: NamedDependency[Engine],
    status: Annotated[str, QueryParameter(required=False)] = "",
    q: Annotated[str, QueryParameter(required=False, max_length=200)] = "",
    client: Annotated[str, QueryParameter(required=False, max_length=MAX_CLIENT)] = "",
    page: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 1,
) -> Template:
    """Requests, newest first, filtered by status and client, searched by id or product name."""
    statuses = [s.value for s in RequestStatus]
    chosen = RequestStatus(status) if status in statuses else None
    rows, total = await engine.list_requests(
        status=chosen,
        search=q.strip() or None,
        client=client.strip() or None,
        limit=REQUESTS_PER_PAGE,
        offset=(page - 1) * REQUESTS_PER_PAGE,
    )
    filters = {
        k: v
        for k, v in (("status", chosen.value if chosen else ""), ("q", q), ("client", client))
        if v
    }

    def page_url(number: int) -> str:
        return f"{ADMIN_PATH}?{urlencode({**filters, 'page': number})}"

    return _render(
        request,
        "list.html",
        rows=rows,
        total=total,
        page=page,
        pages=_pages(total, REQUESTS_PER_PAGE),
        page_url=page_url,
        statuses=statuses,
        status=chosen.value if chosen else "",
        q=q,
        client=client,
    )


@get("/requests/{request_id:str}", name="admin:request")
async def request_detail(
    request: AnyRequest,
    request_id: FromPath[str],
    engine: NamedDependency[Engine],
    page: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 1,
) -> Template:
    """One request: its products and images (with thumbnails) and its webhook deliveries."""
    info = await engine.status(request_id)
    products = await engine.products(
        info.request_id, start=(page - 1) * PRODUCTS_PER_PAGE, limit=PRODUCTS_PER_PAGE
    )
    deliveries = await engine.deliveries(info.request_id)
    base = f"{ADMIN_PATH}/requests/{info.request_id}"
    return _render(
        request,
        "detail.html",
        info=info,
        base=base,
        products=products,
        deliveries=deliveries,
        page=page,
        pages=_pages(info.total_products, PRODUCTS_PER_PAGE),
        page_url=lambda number: f"{base}?page={number}",
    )


@get("/requests/{request_id:uuid}/thumbs/{image_id:int}", media_type="image/jpeg")
async def thumbnail(
    request_id: FromPath[UUID],
    image_id: Annotated[int, Parameter(ge=1, le=MAX_ID)],
    engine: NamedDependency[Engine],
) -> Response[bytes]:
    """A done image's thumbnail (made from its output the first time, then stored)."""
    try:
        data = await engine.thumbnail(request_id, image_id)
    except (StorageError, ImageError) as exc:
        log.warning("no thumbnail for image %s of request %s: %s", image_id, request_id, exc)
        raise ImageNotFoundError(request_id, image_id) from None
    return Response(
        data,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@get("/requests/{request_id:str}/status.json")
async def status_json(
    request: AnyRequest,
    request_id: FromPath[str],
    runtime: NamedDependency[Runtime],
    engine: NamedDependency[Engine],
    page: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 100,
) -> Response[StatusOut]:
    """The status document of ``GET /status/{id}``, for a logged-in admin (no API key)."""
    document = await read_status(
        engine,
        request_id,
        base=runtime.settings.base_url,
        path=request.url.path,
        page=page,
        per_page=per_page,
    )
    return Response(document, headers=_PAGE_HEADERS)


@get("/requests/{request_id:str}/output.csv", media_type="text/csv")
async def output_csv(request_id: FromPath[str], engine: NamedDependency[Engine]) -> Stream:
    """The output CSV, for a logged-in admin (no API key)."""
    return await output_csv_download(engine, request_id)


# -- actions ----------------------------------------------------------------------------------


@post("/requests/{request_id:str}/retry", status_code=303)
async def retry(
    request: AnyRequest, request_id: FromPath[str], engine: NamedDependency[Engine]
) -> Redirect:
    """Queue the request's failed images again."""
    await _form(request)
    info = await engine.status(request_id)
    try:
        count = await engine.retry_failed(info.request_id)
    except RequestStateError as exc:
        _flash(request, f"Not retried: {exc.message}.", "error")
        return Redirect(f"{ADMIN_PATH}/requests/{info.request_id}", status_code=303)
    log.info(
        "admin %s retried %d failed images of request %s",
        _username(request),
        count,
        info.request_id,
        extra={"admin_user": _username(request), "request_id": str(info.request_id)},
    )
    _flash(request, f"{count} failed image(s) queued again." if count else "No failed images.")
    return Redirect(f"{ADMIN_PATH}/requests/{info.request_id}", status_code=303)


CSRF_FIELD = "csrf_token"


def admin_client(username: str) -> str:
    """The client an admin's uploads belong to: ``admin:<username>``, shortened (with a hash
    of the whole name, so it stays unique) to the 64 characters a client id may have."""
    client = f"admin:{username}"
    if len(client) <= MAX_CLIENT:
        return client
    digest = hashlib.sha256(username.encode()).hexdigest()[:12]
    return f"{client[: MAX_CLIENT - 13]}~{digest}"


@get("/upload", name="admin:upload")
async def upload_page(request: AnyRequest, engine: NamedDependency[Engine]) -> Template:
    """The upload form, for people who do not use the API."""
    return _render(request, "upload.html", **_upload_fields(engine))


def _upload_fields(engine: Engine, webhook_url: str = "", preset: str = "") -> dict[str, Any]:
    return {
        "error": None,
        "issues": [],
        "webhook_url": webhook_url,
        "preset": preset or "default",
        "presets": list(engine.presets),
    }


@post("/upload", status_code=303, request_max_body_size=None)
async def upload(
    request: AnyRequest, runtime: NamedDependency[Runtime], engine: NamedDependency[Engine]
) -> Response[Any]:
    """Store an uploaded CSV as a request of client ``admin:<username>``, as the API would."""
    media_type, options = request.content_type
    boundary = options.get("boundary")
    if media_type != "multipart/form-data" or not boundary:
        raise ValidationException("send the form as multipart/form-data")
    form = UploadForm(
        limited(request.stream(), runtime.settings.max_upload_bytes),
        boundary,
        keep=(WEBHOOK_FIELD, PRESET_FIELD, CSRF_FIELD),
    )
    webhook_url = preset = ""
    try:
        # The token comes before the file in the form, so nothing is stored without it.
        await form.read_until_file()
        check_csrf(_session(request), form.fields.get(CSRF_FIELD))
        webhook_url = form.fields.get(WEBHOOK_FIELD, "").strip()
        preset = form.fields.get(PRESET_FIELD, "").strip()
        check_file_type(form.content_type)
        request_id = await engine.submit_csv(
            form.file_chunks(),
            webhook_url=webhook_url or None,
            filename=form.filename,
            preset=preset or None,
            client=admin_client(_username(request)),
        )
    except (ImgcoreError, ProblemError) as exc:
        problem = from_imgcore(exc) if isinstance(exc, ImgcoreError) else exc
        issues = [issue.message for issue in problem.errors or []]
        return _render(
            request,
            "upload.html",
            status_code=problem.status,
            **{
                **_upload_fields(engine, webhook_url, preset),
                "error": problem.detail,
                "issues": issues,
            },
        )
    finally:
        await form.aclose()
    log.info(
        "admin %s uploaded request %s",
        _username(request),
        request_id,
        extra={"admin_user": _username(request), "request_id": str(request_id)},
    )
    _flash(request, f"Uploaded {form.filename or 'the CSV'}: its images are being processed.")
    return Redirect(f"{ADMIN_PATH}/requests/{request_id}", status_code=303)


@post("/requests/{request_id:str}/cancel", status_code=303)
async def cancel(
    request: AnyRequest, request_id: FromPath[str], engine: NamedDependency[Engine]
) -> Redirect:
    """Cancel a running request (the same as ``POST /requests/{id}/cancel``)."""
    await _form(request)
    info = await engine.status(request_id)
    try:
        count = await engine.cancel(info.request_id)
    except RequestStateError as exc:
        _flash(request, f"Not cancelled: {exc.message}.", "error")
    else:
        log.info(
            "admin %s cancelled request %s",
            _username(request),
            info.request_id,
            extra={"admin_user": _username(request), "request_id": str(info.request_id)},
        )
        _flash(request, f"Cancelled: {count} pending image(s) will not be processed.")
    return Redirect(f"{ADMIN_PATH}/requests/{info.request_id}", status_code=303)


@get("/requests/{request_id:str}/delete")
async def delete_page(
    request: AnyRequest, request_id: FromPath[str], engine: NamedDependency[Engine]
) -> Template:
    """Ask before deleting."""
    info = await engine.status(request_id)
    return _render(request, "delete.html", info=info)


@post("/requests/{request_id:str}/delete", status_code=303)
async def delete(
    request: AnyRequest, request_id: FromPath[str], engine: NamedDependency[Engine]
) -> Redirect:
    """Delete the request, its rows and its stored images."""
    await _form(request)
    info: RequestInfo = await engine.status(request_id)
    try:
        await engine.delete_request(info.request_id)
    except RequestStateError as exc:
        _flash(request, f"Not deleted: {exc.message}.", "error")
        return Redirect(f"{ADMIN_PATH}/requests/{info.request_id}", status_code=303)
    log.info(
        "admin %s deleted request %s",
        _username(request),
        info.request_id,
        extra={"admin_user": _username(request), "request_id": str(info.request_id)},
    )
    _flash(request, f"Request {info.request_id} deleted with its {info.done} stored image(s).")
    return Redirect(ADMIN_PATH, status_code=303)


# -- stylesheet and errors --------------------------------------------------------------------


def _stylesheet() -> bytes:
    from importlib.resources import files

    return files("imgapi.admin").joinpath("static/admin.css").read_bytes()


@get("/static/admin.css", opt={"public": True}, media_type="text/css")
async def stylesheet() -> Response[bytes]:
    """The admin pages' only stylesheet."""
    return Response(
        _stylesheet(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


def _login_redirect(_: AnyRequest, exc: LoginRequiredError) -> Response[Any]:
    query = "" if exc.next_path == ADMIN_PATH else "?" + urlencode({"next": exc.next_path})
    return Redirect(f"{ADMIN_PATH}/login{query}", status_code=303)


def _csrf_refused(request: AnyRequest, _: CsrfError) -> Response[Any]:
    log.warning("admin form refused: missing or wrong CSRF token (%s)", request.url.path)
    message = "This form has expired or did not come from this site. Reload the page and retry."
    return _render(request, "error.html", status_code=403, title="Forbidden", message=message)


def _not_found(request: AnyRequest, _: RequestNotFoundError) -> Response[Any]:
    return _render(
        request, "error.html", status_code=404, title="Not found", message="No such request."
    )


def _bad_request(request: AnyRequest, exc: ValidationException | OutOfRangeError) -> Response[Any]:
    if request.url.path.endswith("/status.json"):
        # The JSON twin of GET /status/{id} answers as that route does.
        return problem_answer(request, exc)
    message = "This address has a parameter out of range (a page number too large?)."
    return _render(request, "error.html", status_code=400, title="Bad request", message=message)


def exception_handlers() -> ExceptionHandlersMap:
    """The admin router's handlers: login redirect, 403 for CSRF, HTML 400 and 404."""
    return {
        LoginRequiredError: _login_redirect,
        CsrfError: _csrf_refused,
        RequestNotFoundError: _not_found,
        ValidationException: _bad_request,
        OutOfRangeError: _bad_request,
    }


HANDLERS = [
    login_page,
    login,
    logout,
    requests_list,
    request_detail,
    thumbnail,
    status_json,
    output_csv,
    retry,
    cancel,
    upload_page,
    upload,
    delete_page,
    delete,
    stylesheet,
]
