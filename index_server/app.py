"""The Flask application factory.

Production: `wheelfarm serve` (index_server/serving.py) runs it under gunicorn, configured through
environment variables (see Config.from_env). Blueprints reach the shared state through
index_server.state and never import this module.
"""

from __future__ import annotations

import logging

from flask import Flask

from index_server import errors, middleware
from index_server.state import DEFAULT_MAX_UPLOAD, Config, default_data_dir, init_app
from index_server.storage import LocalStorage, Storage

__all__ = ["DEFAULT_MAX_UPLOAD", "Config", "create_app", "default_data_dir"]


def _log_to_stderr() -> None:
    """Uploads, refusals and yanks go to stderr (gunicorn's error log) unless logging is set up."""
    logger = logging.getLogger("index_server")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
        )
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def create_app(config: Config | None = None, storage: Storage | None = None) -> Flask:
    from index_server import api, devpi_compat, farm_api, files, overlay, pages, simple, upload

    config = config or Config.from_env()
    _log_to_stderr()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload
    app.config["MAX_FORM_MEMORY_SIZE"] = 16 << 20  # twine sends the long description as a field
    app.json.sort_keys = False  # type: ignore[attr-defined]
    st = init_app(app, config, storage or LocalStorage(config.data))
    blueprints = (simple.bp, files.bp, upload.bp, api.bp, pages.bp, farm_api.bp)
    for bp in (*blueprints, overlay.bp, devpi_compat.bp):
        app.register_blueprint(bp)
    errors.register(app)
    middleware.install(app, st)
    return app
