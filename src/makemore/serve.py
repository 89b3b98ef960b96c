"""makemore serve RUN: a page and an HTTP API that generate names from a trained run (with no RUN, or a folder of
runs, the workspace: workspace_app.py).

POST /api/generate  names with their log-probabilities and whether each is in the training data
POST /api/score     how likely given words are: log-probability, per character, each character's surprisal
POST /api/next      the distribution of the character after a prefix
GET  /api/model     the run's config, params, val loss, vocabulary and classes
GET  /healthz       liveness
GET  /              the page (static/index.html)

One worker thread runs the model. The generation requests that arrive while it works are gathered into one
batch — whatever their options — so a burst of requests costs about one batched decode, not a queue of them;
each request draws from its own random generator, so a seed gives the same names alone or in a batch. With
--workers N, N such processes (uvicorn's) share the port, each with the model and its own batches: one process's
Python (HTTP, validation, the decode loop) runs under one GIL, and on a CPU it left half of two cores idle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator

from makemore import models
from makemore.api import load
from makemore.data import BOUNDARY
from makemore.draw import Sampler
from makemore.errors import ConfigError
from makemore.ranks import threads_per_process
from makemore.run import Run
from makemore.runfolder import CHECKPOINT, CONFIG, RECIPE
from makemore.sample import SAMPLING, generate_jobs

STATIC = Path(__file__).parent / "static"
MAX_BODY = 32_768  # bytes: enough for an exclude list or words to score, far from a memory burden
TIME_BOUND_S = 5.0  # no new round of a request's draws starts this long after its first
MAX_PREFIX = 32
MAX_NAMES = 1000  # names a request may ask for: the library's own bound, SAMPLING["n"], is for the command line


def bounded(name: str, default, high=None, **extra):
    """A request field bounded as the library's sampling setting SAMPLING[name] is, or by the server's high."""
    field, bounds = SAMPLING[name], {}
    if field.low is not None:
        bounds["ge" if field.low_inclusive else "gt"] = field.low
    if high is not None or field.high is not None:
        bounds["le" if high is not None or field.high_inclusive else "lt"] = field.high if high is None else high
    return Field(default, description=field.help, **bounds, **extra)


class Prefixed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prefix: str = Field("", max_length=MAX_PREFIX, description=SAMPLING["prefix"].help)
    class_: str | None = Field(None, alias="class", description="the class, for a conditioned model")


class GenerateRequest(Prefixed):
    n: int = bounded("n", 10, MAX_NAMES)
    temperature: float = bounded("temperature", 1.0, 5)
    top_k: int | None = bounded("top_k", None, 10_000)
    top_p: float | None = bounded("top_p", None)
    min_len: int = bounded("min_len", 1)
    max_len: int | None = bounded("max_len", None)
    seed: int | None = bounded("seed", None)
    novel_only: bool = False
    unique: bool = Field(False, description="each name once")
    exclude: list[str] = Field([], max_length=2000, description="names never to give")
    pattern: str | None = Field(None, max_length=200, description=SAMPLING["pattern"].help)
    ends_with: str = Field("", max_length=MAX_PREFIX, description=SAMPLING["ends_with"].help)
    contains: list[str] = Field([], max_length=8, description="every name contains each of these")
    min_distance: int = bounded("min_distance", 0)
    list_style: bool = Field(True, description="names written as the list writes its items: one that writes what no "
                                                "item does (a capital after a lower-case letter, a bracket left open) "
                                                "is drawn again")

    @field_validator("n", "temperature", "top_k", "top_p", "min_len", "max_len", "seed", "min_distance", mode="before")
    @classmethod
    def a_number_not_a_boolean(cls, value):  # JSON's true is not 1 here
        if isinstance(value, bool):
            raise ValueError("expected a number, got a boolean")
        return value


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    words: list[str] = Field(..., min_length=1, max_length=1000)
    class_: str | None = Field(None, alias="class", description="the class, for a conditioned model")


class Worker:
    """The one thread that runs the model. Generation requests waiting when it is free are decoded together, a
    round of each, in one call of generate_jobs (batches of at most MAX_ROWS rows); a request that needs another
    round (its filters left out names) joins the next one. Other calls (next character, scores) run between."""

    IDLE_S = 60.0  # a thread with no work this long ends; the next work starts another

    def __init__(self, run: Run):
        self.run = run
        self.pending: list[tuple[object, Future]] = []  # (Sampler or a function, its future)
        self.most_jobs = 0  # the most requests one round of decoding served
        self.ready = threading.Condition()
        self.thread = None

    def submit(self, work) -> Future:
        future = Future()
        with self.ready:
            self.pending.append((work, future))
            if self.thread is None:
                self.thread = threading.Thread(target=self.loop, name="makemore-worker", daemon=True)
                self.thread.start()
            self.ready.notify()
        return future

    def loop(self):
        while True:
            with self.ready:
                while not self.pending:
                    if not self.ready.wait(self.IDLE_S) and not self.pending:
                        self.thread = None  # under the lock: the next submit starts another
                        return
                taken, self.pending = self.pending, []
            samplers = []
            for work, future in taken:
                if isinstance(work, Sampler):
                    samplers.append((work, future))
                else:
                    self.settle(future, work)
            self.decode(samplers)

    @staticmethod
    def settle(future: Future, fn):
        try:
            future.set_result(fn())
        except Exception as e:  # given to the request that asked, not to the worker
            future.set_exception(e)

    def decode(self, samplers):
        """A round of each sampler's names, decoded together (in batches of at most MAX_ROWS rows)."""
        batch = []
        for s, f in samplers:
            job = s.next_job()
            if job is None:  # done: its names are found, or its rounds or time are spent
                f.set_result(s.result())
            else:
                batch.append((s, f, job))
        if not batch:
            return
        self.most_jobs = max(self.most_jobs, len(batch))
        try:
            results = generate_jobs(self.run.model, self.run.vocab, [job for _, _, job in batch], logprobs=True)
        except Exception as e:
            for _, f, _ in batch:
                f.set_exception(e)
            return
        for (s, f, _), result in zip(batch, results):
            s.take(result)
            with self.ready:  # its next round, in the next batch
                self.pending.append((s, f))


FIELDS = {"cls": "class"}  # the library's settings as the API's JSON names them, where they differ


def json_name(field: str) -> str:
    return FIELDS.get(field, field)


def error_response(errors: list[tuple[str, str]], status_code: int = 422) -> JSONResponse:
    """422, with each bad field named: detail in FastAPI's shape, and one readable line in error."""
    detail = [{"loc": ["body", field], "msg": msg, "type": "value_error"} for field, msg in errors]
    return JSONResponse({"detail": detail, "error": "; ".join(f"{f}: {m}" for f, m in errors)},
                        status_code=status_code)


def too_large(limit: int) -> JSONResponse:
    return error_response([("body", f"the request body is over {limit:,} bytes")], status_code=413)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes (larger[path] for a path that takes more) gets a 413
    naming the body, before any parsing."""

    def __init__(self, app, limit: int, larger: dict[str, int]):
        self.app, self.limit, self.larger = app, limit, larger

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.larger.get(scope["path"], self.limit)
        announced = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not announced.isdigit() or int(announced) > limit:  # refused before a byte of it is read
            return await too_large(limit)(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                return await too_large(limit)(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class RunService:
    """A loaded run and the worker thread that runs its model: the answers of its part of the API."""

    def __init__(self, run: Run):
        self.run = run
        self.worker = Worker(run)
        for cls in range(len(run.classes)) if run.classes else [None]:  # the list's style, learned now and not in
            run.style(cls)  # a request's time on the event loop (1.4 s for 234,908 places)

    async def on_worker(self, work):
        return await asyncio.wrap_future(self.worker.submit(work))

    def info(self) -> dict:
        run, summary = self.run, self.run.summary
        return {
            "model": run.model_name,
            "config": run.state["model_config"],
            "train": run.state["train_config"],
            "params": models.num_params(run.model),
            "val_loss": summary.get("val_loss"),
            "test_loss": summary.get("test_loss"),
            "train_loss": summary.get("train_loss"),
            "data": run.corpus.source,
            "items": len(run.corpus.items),
            "vocabulary": run.vocab.chars,
            "classes": run.corpus.classes or [],
        }

    # The answers are JSONResponses, plain JSON types already: FastAPI's encoder, walking every name's dict, took
    # a quarter of the server's time with the GIL in a burst of generation requests (serve_load, py-spy --gil).
    async def generate(self, req: GenerateRequest) -> JSONResponse:
        run = self.run
        known = run.known(req.class_)
        started = time.monotonic()
        sampler = run.sampler(req.n, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p, prefix=req.prefix,
                              seed=req.seed, cls=req.class_, min_len=req.min_len, max_len=req.max_len,
                              novel_only=req.novel_only, exclude=req.exclude, unique=req.unique,
                              seconds=TIME_BOUND_S, logprobs=True, pattern=req.pattern, ends_with=req.ends_with,
                              contains=req.contains, min_distance=req.min_distance,
                              list_style=req.list_style)
        drawn = await self.on_worker(sampler)
        return JSONResponse({
            "names": [{"name": w, "logprob": lp, "known": w in known} for w, lp in drawn.names],
            "novelty": None if math.isnan(drawn.novelty) else drawn.novelty,  # none drawn: no rate
            "drawn": len(drawn.drawn),
            "unstyled": drawn.unstyled,  # names drawn again as not written as the list writes
            "complete": drawn.complete,
            "guidance": drawn.guidance,  # with a shape: "exact" (drawn and rejected) or "guided" (and how corrected)
            "seconds": round(time.monotonic() - started, 4),
        })

    async def score(self, req: ScoreRequest) -> JSONResponse:
        scores = await self.on_worker(lambda: self.run.score(req.words, cls=req.class_))
        return JSONResponse({"scores": [dataclasses.asdict(s) for s in scores]})

    async def next_char(self, req: Prefixed) -> JSONResponse:
        probs = await self.on_worker(lambda: self.run.next_char_probs(req.prefix, cls=req.class_))
        chars = [{"char": "" if i == BOUNDARY else self.run.vocab.chars[i - 1], "end": i == BOUNDARY, "p": p}
                 for i, p in enumerate(probs)]
        return JSONResponse({"prefix": req.prefix, "next": sorted(chars, key=lambda c: -c["p"])})


def base_app(title: str, larger: dict[str, int] | None = None, lifespan=None) -> FastAPI:
    """The app both servers start from: bounded bodies (larger[path] for a path that takes more), the library's
    errors and FastAPI's as 422s naming the field, /healthz and the static files."""
    app = FastAPI(title=title, docs_url="/api/docs", openapi_url="/api/openapi.json", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY, larger=larger or {})

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

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def create_app(folder, device: str = "cpu") -> FastAPI:
    """makemore serve RUN: the page and the API of one run."""
    service = RunService(load(folder, device=device))
    app = base_app("makemore")
    app.get("/api/model")(service.info)

    @app.post("/api/generate")
    async def generate(req: GenerateRequest):
        return await service.generate(req)

    @app.post("/api/score")
    async def score(req: ScoreRequest):
        return await service.score(req)

    @app.post("/api/next")
    async def next_char(req: Prefixed):
        return await service.next_char(req)

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    return app


WORKER_ENV = "MAKEMORE_SERVE_WORKER"  # what each of --workers' processes serves: folder, device, torch threads


def is_run_folder(folder) -> bool:
    return any((Path(folder) / name).exists() for name in (CHECKPOINT, CONFIG, RECIPE))


def serve(folder, host: str, port: int, device: str = "cpu", workers: int = 1):
    if workers == 1:
        app = create_app(folder, device=device)
    else:  # uvicorn starts each process from an import string
        load(folder, device=device)  # a run that cannot be served is one clear error here, not one in every process
        os.environ[WORKER_ENV] = json.dumps({"folder": str(Path(folder).resolve()), "device": device,
                                             "threads": threads_per_process(workers)})
        app = f"{__name__}:worker_app"
    listen(app, host, port, str(folder), workers)


def listen(app, host: str, port: int, what: str, workers: int = 1):
    import uvicorn

    print(f"makemore: serving {what} on http://{host}:{port}/" + (f" from {workers} processes" if workers > 1 else ""),
          flush=True)
    uvicorn.run(app, factory=workers > 1, workers=workers, host=host, port=port, log_level="warning",
                timeout_keep_alive=5, limit_concurrency=256)


def worker_app() -> FastAPI:
    """The app of one of `serve --workers N`'s processes (uvicorn starts each from this name, in a new interpreter)."""
    spec = json.loads(os.environ[WORKER_ENV])
    torch.set_num_threads(spec["threads"])
    return create_app(spec["folder"], device=spec["device"])
