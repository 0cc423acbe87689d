"""Start the page: one temp folder, runs found, the model loaded once, requests queued.

Safety: binds 127.0.0.1 unless told otherwise; the server writes only under its own temp
folder (Gradio's uploads and cache go there: ``GRADIO_TEMP_DIR``) and removes it on exit;
it serves files only from that folder and ``--runs`` (``allowed_paths``); uploads over the
size limit are refused; analytics are off, so the page never phones home.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from fusion.errors import CheckpointError, ConfigError
from fusion.serve.service import DEFAULT_MAX_UPLOAD_MB, CaptionService

logger = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
INSTALL_HINT = "install the web page's extra: pip install -e '.[serve]' (make setup does)"


def make_workdir() -> Path:
    """The server's own temp folder; Gradio's uploads and cache are pointed inside it."""
    workdir = Path(tempfile.mkdtemp(prefix="fusion-serve-"))
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("MPLCONFIGDIR", str(workdir / "matplotlib"))
    return workdir


def resolve_runs(runs_dir: str | Path, model: str | None) -> tuple[dict[str, Path], str]:
    """The runs to offer (found under ``runs_dir`` plus ``model``) and the one selected first.

    Raises:
        CheckpointError: no run found, or ``model`` is not a run.
    """
    from fusion.serve.runs import discover_runs, is_run

    root = Path(runs_dir)
    runs = discover_runs(root) if root.is_dir() else {}
    default = None
    if model is not None:
        path = Path(model).resolve()
        if not path.exists():
            raise CheckpointError(f"--model {model}: no such run folder; train one (make demo) or give a run folder")
        match = [name for name, p in runs.items() if p == path]
        default = match[0] if match else (path.name if is_run(path) else str(model))
        runs.setdefault(default, path)
    if not runs:
        raise CheckpointError(f"no trained run under {root}: train one (`make demo` writes runs/demo) or give "
                              "--runs DIR / --model RUN")
    return runs, default or next(iter(runs))


def build(runs_dir: str | Path = "runs", model: str | None = None, device: str = "cpu",
          max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, workdir: Path | None = None) -> tuple[Any, CaptionService, Path, str]:
    """Everything but the listening socket: (gradio Blocks, service, workdir, default run).

    The default run is loaded here, so the first request is served warm.

    Raises:
        ConfigError: gradio is not installed. CheckpointError: no run to serve.
    """
    if max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb {max_upload_mb} is invalid: give a size in MB above 0")
    runs, default = resolve_runs(runs_dir, model)  # before the slow gradio import: a wrong folder fails at once
    workdir = workdir or make_workdir()
    try:
        import gradio  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError(f"fusion serve needs gradio: {INSTALL_HINT}") from None
    from fusion.serve.app import Page
    from fusion.serve.layout import build_app

    service = CaptionService(runs, device=device, max_upload_bytes=int(max_upload_mb * 2**20))
    service.load(default)
    page = Page(service, Path(runs_dir).resolve(), workdir)
    return build_app(page, default), service, workdir, default


def serve(runs_dir: str | Path = "runs", model: str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          device: str = "cpu", max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, queue_size: int = 64) -> None:
    """Build the page and serve it until interrupted; the temp folder is removed on exit."""
    workdir = make_workdir()
    # SIGTERM (a service manager, `kill`) ends the server like Ctrl+C does, so the temp folder goes too
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        app, _, _, default = build(runs_dir, model, device, max_upload_mb, workdir)
        from fusion.serve.views import CSS

        # one model, one decode at a time: the rest wait in the queue (up to queue_size)
        app.queue(default_concurrency_limit=1, max_size=queue_size)
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(f"fusion serve: warning: listening on {host}: anyone who can reach this machine can use the page "
                  "and upload files", file=sys.stderr)
        allowed = [str(Path(runs_dir).resolve()), str(workdir)]
        try:
            app.launch(server_name=host, server_port=port, allowed_paths=allowed, max_file_size=int(max_upload_mb * 2**20),
                       show_error=False, quiet=True, ssr_mode=False, mcp_server=False, enable_monitoring=False,
                       footer_links=[], pwa=False, css=CSS, run_history=False, prevent_thread_lock=True)
        except OSError as err:  # the port is taken or the address is not this machine's
            logger.info("launch failed: %s", err)
            raise ConfigError(f"cannot listen on {host}:{port}: the port is in use or the address is not this "
                              "machine's; give another --port or --host") from None
        logger.info("serving run %s on http://%s:%d", default, host, port)
        print(f"fusion serve: http://{host}:{port}  (run {default}; Ctrl+C stops)", flush=True)
        app.block_thread()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)
