"""The API docs of the platform's HTTP services, working offline, and their bearer scheme.

FastAPI's own ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN, so on a machine
without internet they render blank. Here the service serves those assets itself, from the
``fastapi-offline`` package (installed with the platform, nothing fetched at run time), and
its OpenAPI document declares the bearer token scheme, so Swagger UI's "Authorize" sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Where the Swagger UI and ReDoc assets are served from, and where they are in the package.
ASSETS_PATH = "/docs-assets"
ASSETS = files("fastapi_offline") / "static"
#: The name of the bearer scheme in ``components.securitySchemes``.
BEARER = "bearer"


def serve_docs(
    app: FastAPI,
    *,
    public: Iterable[str] = ("/health",),
    describe: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from the service's own assets, and an
    OpenAPI document where every operation but the ``public`` paths needs a bearer token.

    ``app`` must be made with ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages);
    ``describe`` adds what the routes cannot say themselves to the document, once.
    """
    app.mount(ASSETS_PATH, StaticFiles(directory=str(ASSETS)), name="docs-assets")
    title, openapi_url = app.title, app.openapi_url or "/openapi.json"

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)
    open_paths, generate = frozenset(public), app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI's own document, with additions only (made once, then cached by FastAPI).
        if app.openapi_schema is None:
            schema = generate()
            declare_bearer(schema, open_paths)
            if describe is not None:
                describe(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def declare_bearer(schema: dict[str, Any], public: frozenset[str]) -> None:
    """The bearer scheme in ``schema``'s components, required by every operation outside the
    ``public`` paths."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A token from the platform's issuer (`mlsec token issue`) or the "
        "configured OIDC provider.",
    }
    for path, operations in schema.get("paths", {}).items():
        if path in public:
            continue
        for operation in operations.values():
            operation.setdefault("security", [{BEARER: []}])
