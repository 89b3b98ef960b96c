"""makemore serve with no run (or a folder of runs): the workspace page and its HTTP API.

GET  /api/runs                     every run: where it stands; the queue; the presets
POST /api/runs?name=N&preset=P     a list (the body: UTF-8 text, one item per line), queued to train
GET  /api/runs/{run}               where a run stands, with its curve (every evaluation's losses)
POST /api/runs/{run}/cancel        stop its training (with a checkpoint) or take it out of the queue
POST /api/runs/{run}/resume        queue a cancelled or stopped run again: on from its checkpoint
GET  /api/runs/{run}/download      the run folder as a .zip
GET  /api/runs/{run}/model         } as `makemore serve RUN` answers /api/model, /api/generate, /api/score and
POST /api/runs/{run}/generate      } /api/next, for that run
POST /api/runs/{run}/score         }
POST /api/runs/{run}/next          }
GET  /                             the page (static/workspace.html)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from makemore.api import load
from makemore.errors import UserError
from makemore.runfolder import CHECKPOINT
from makemore.serve import STATIC, GenerateRequest, Prefixed, RunService, ScoreRequest, base_app, error_response, listen
from makemore.workspace import MAX_UPLOAD, Conflict, NotFound, Workspace

LOADED = 4  # runs kept loaded for generation, the most recently used


class Services:
    """The loaded runs of a workspace, each reloaded when its checkpoint changes (a resumed run)."""

    def __init__(self, workspace: Workspace, device: str):
        self.workspace, self.device = workspace, device
        self.loaded: OrderedDict[str, tuple[int, RunService]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, name: str) -> RunService:
        folder = self.workspace.folder_of(name)
        status = self.workspace.status(name)
        if not status["can_generate"]:
            raise Conflict(f"{name} has no trained model yet ({status['state']})")
        stamp = (folder / CHECKPOINT).stat().st_mtime_ns
        with self.lock:  # held while loading: a burst of first requests loads the run once, not once each
            held = self.loaded.get(name)
            if held and held[0] == stamp:
                self.loaded.move_to_end(name)
                return held[1]
            service = RunService(load(folder, device=self.device))
            self.loaded[name] = (stamp, service)
            self.loaded.move_to_end(name)
            while len(self.loaded) > LOADED:
                self.loaded.popitem(last=False)  # its worker thread ends when idle
        return service


def create_workspace_app(folder, device: str = "cpu", start: bool = True):
    workspace = Workspace(folder, device=device, start=start)
    services = Services(workspace, device)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(workspace.close)  # the server stops: so does its training, with a checkpoint

    app = base_app("makemore workspace", larger={"/api/runs": MAX_UPLOAD}, lifespan=lifespan)
    app.state.workspace = workspace

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return error_response([("run", str(exc))], status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict):
        return error_response([("run", str(exc))], status_code=409)

    @app.exception_handler(UserError)
    async def unusable(request: Request, exc: UserError):  # a run folder that cannot be loaded
        return error_response([("run", str(exc))], status_code=409)

    async def off_loop(fn, *args):  # file reading and loading, off the event loop
        return await asyncio.to_thread(fn, *args)

    @app.get("/api/runs")
    async def runs():
        return await off_loop(workspace.overview)

    @app.post("/api/runs", status_code=201)
    async def add(request: Request, name: str = "list", preset: str | None = None):
        name = await off_loop(workspace.add, await request.body(), name, preset or None)
        return await off_loop(workspace.status, name)

    @app.get("/api/runs/{name}")
    async def status(name: str):
        return await off_loop(lambda: workspace.status(name, curve=True))

    @app.post("/api/runs/{name}/cancel")
    async def cancel(name: str):
        await off_loop(workspace.cancel, name)
        return await off_loop(workspace.status, name)

    @app.post("/api/runs/{name}/resume")
    async def resume(name: str):
        await off_loop(workspace.resume, name)
        return await off_loop(workspace.status, name)

    @app.get("/api/runs/{name}/download")
    async def download(name: str):
        path = await off_loop(workspace.zip, name)
        return FileResponse(path, media_type="application/zip", filename=f"{name}.zip",
                            background=BackgroundTask(Path(path).unlink, missing_ok=True))

    @app.get("/api/runs/{name}/model")
    async def model(name: str):
        return JSONResponse((await off_loop(services.get, name)).info())

    @app.post("/api/runs/{name}/generate")
    async def generate(name: str, req: GenerateRequest):
        return await (await off_loop(services.get, name)).generate(req)

    @app.post("/api/runs/{name}/score")
    async def score(name: str, req: ScoreRequest):
        return await (await off_loop(services.get, name)).score(req)

    @app.post("/api/runs/{name}/next")
    async def next_char(name: str, req: Prefixed):
        return await (await off_loop(services.get, name)).next_char(req)

    @app.get("/")
    def index():
        return FileResponse(STATIC / "workspace.html")

    return app


def serve_workspace(folder, host: str, port: int, device: str = "cpu"):
    listen(create_workspace_app(folder, device=device), host, port, f"the workspace {folder}")
