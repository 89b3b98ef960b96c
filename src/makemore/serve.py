"""makemore serve RUN: a page and an HTTP API that generate names from a trained run.

POST /api/generate  names with their log-probabilities and whether each is in the training data
POST /api/next      the distribution of the character after a prefix
GET  /api/model     the run's config, params, val loss, vocabulary and classes
GET  /healthz       liveness
GET  /              the page (static/index.html)
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from makemore import models
from makemore.api import load
from makemore.data import BOUNDARY
from makemore.errors import ConfigError

STATIC = Path(__file__).parent / "static"
MAX_BODY = 4096  # bytes: the largest valid request is far smaller
TIME_BOUND_S = 5.0  # no new batch of --novel-only draws starts after this
MAX_PREFIX = 32


class Prefixed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prefix: str = Field("", max_length=MAX_PREFIX, description="every name starts with it")
    class_: str | None = Field(None, alias="class", description="the class, for a conditioned model")


class GenerateRequest(Prefixed):
    n: int = Field(10, ge=1, le=1000)
    temperature: float = Field(1.0, gt=0, le=5)
    top_k: int | None = Field(None, ge=1, le=10_000)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    novel_only: bool = False


FIELDS = {"cls": "class"}  # the library's settings as the API's JSON names them, where they differ


def json_name(field: str) -> str:
    return FIELDS.get(field, field)


def error_response(errors: list[tuple[str, str]]) -> JSONResponse:
    """422, with each bad field named: detail in FastAPI's shape, and one readable line in error."""
    detail = [{"loc": ["body", field], "msg": msg, "type": "value_error"} for field, msg in errors]
    return JSONResponse({"detail": detail, "error": "; ".join(f"{f}: {m}" for f, m in errors)}, status_code=422)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets a 422 naming the body, before any parsing."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                response = error_response([("body", f"the request body is over {self.limit} bytes")])
                return await response(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def create_app(folder, device: str = "cpu") -> FastAPI:
    run = load(folder, device=device)
    corpus, vocab, model = run.corpus, run.vocab, run.model
    summary_path = Path(folder) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    lock = threading.Lock()  # one generation at a time: torch already uses every core for one
    app = FastAPI(title="makemore", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.add_middleware(BodyLimit, limit=MAX_BODY)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ()) if x != "body"]
            errors.append((".".join(loc) or "body", e.get("msg", "invalid")))
        return error_response(errors)

    @app.exception_handler(ConfigError)
    async def invalid(request: Request, exc: ConfigError):  # the library's checks, which need the model
        field, _, message = exc.render(json_name).partition(": ")
        return error_response([(field, message)])

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/api/model")
    def model_info():
        return {
            "model": run.model_name,
            "config": run.state["model_config"],
            "train": run.state["train_config"],
            "params": models.num_params(model),
            "val_loss": summary.get("val_loss"),
            "train_loss": summary.get("train_loss"),
            "data": corpus.source,
            "items": len(corpus.items),
            "vocabulary": vocab.chars,
            "classes": corpus.classes or [],
        }

    @app.post("/api/generate")
    def generate(req: GenerateRequest):
        known = run.known(req.class_)
        started = time.monotonic()
        with lock:
            drawn = run.draw(req.n, novel_only=req.novel_only, deadline=started + TIME_BOUND_S, seed=req.seed,
                             cls=req.class_, temperature=req.temperature, top_k=req.top_k, prefix=req.prefix,
                             logprobs=True)
        return {
            "names": [{"name": w, "logprob": lp, "known": w in known} for w, lp in drawn.names],
            "novelty": drawn.novelty,
            "drawn": len(drawn.drawn),
            "complete": len(drawn.names) == req.n,
            "seconds": round(time.monotonic() - started, 4),
        }

    @app.post("/api/next")
    def next_char(req: Prefixed):
        with lock:
            probs = run.next_char_probs(req.prefix, cls=req.class_)
        chars = [{"char": "" if i == BOUNDARY else vocab.chars[i - 1], "end": i == BOUNDARY, "p": p} for i, p in enumerate(probs)]
        return {"prefix": req.prefix, "next": sorted(chars, key=lambda c: -c["p"])}

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(folder, host: str, port: int, device: str = "cpu"):
    import uvicorn

    app = create_app(folder, device=device)
    print(f"makemore: serving {folder} on http://{host}:{port}/", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=5, limit_concurrency=256)
