"""A bounded burst against makemore serve on 127.0.0.1: mixed valid and invalid requests from C connections
for S seconds. Reports requests/s, p50 / p99 latency, the count of each status, the server's and the client's
CPU time per request (Linux), and whether the server is still up. It fails (exit 1) on any 5xx, a connection
error or a dead server.

    python benchmarks/serve_load.py RUN [--seconds 30] [--connections 32] [--workers 1] [--clients 1]
                                        [--device cpu] [--server-cores 0] [--baseline SRC RUN] [--rounds 1]
                                        [--workspace LIST]

It starts `makemore serve RUN` itself on a free port and stops it at the end. The client speaks HTTP/1.1 over
asyncio's streams itself, about 0.2 ms of CPU a request (httpx took a whole core of a 2-core machine for 32
connections, about 5 ms a request, and so measured itself). --clients spreads the connections over that many
client processes, for machines with cores to spare; --server-cores K keeps the server on K cores and the
clients on the others, so that neither takes the other's.

--baseline SRC RUN is the anchor: the server of another checkout (SRC, its src/ folder: e.g. `git worktree add
/tmp/e8a6cde e8a6cde`, the last server that answered one request at a time) serving RUN, measured in turn with
this one, --rounds times, with the same requests; it prints each round's ratio and the median.

--workspace LIST serves RUN from a workspace (`makemore serve FOLDER`, the run copied into it) and, before the
burst, uploads LIST there to train: the burst asks /api/runs/served/generate while the training runs in its own
process. It says how far the training went during the burst.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

VALID = [
    {"n": 20},
    {"n": 20, "prefix": "ma", "temperature": 0.8},
    {"n": 50, "top_k": 5, "seed": 1},
    {"n": 10, "novel_only": True},
    {"n": 200},
]
INVALID = [
    {"n": 0},
    {"n": 5000},
    {"temperature": 0},
    {"prefix": "a" * 40},
    {"prefix": "ma~"},
    {"n": "many"},
    {"top_k": -1},
    {"seed": -5},
    {"unknown": 1},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def exchange(reader, writer, request: bytes) -> tuple[int, bool]:
    """One request on a kept-alive HTTP/1.1 connection: the response's status, and whether the connection stays
    open. The body is read whole (by its length, or chunk by chunk) but not parsed."""
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip().lower() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    if headers.get("transfer-encoding") == "chunked":
        size = -1
        while size:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF; after the last (empty) one, the final CRLF
    else:
        await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers.get("connection") != "close"


def post(port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def connection(port, until, latencies, statuses, rng, path):
    """One client connection: a request at a time, each sent when the last was answered, until `until`. HTTP is
    spoken over asyncio's streams by hand: httpx took a whole core for 32 connections, and so measured itself."""
    requests = {"valid": [post(port, path, json.dumps(b).encode()) for b in VALID],
                "invalid": [post(port, path, json.dumps(b).encode()) for b in INVALID]}
    streams = None
    while time.perf_counter() < until:
        if rng.random() < 0.7:
            kind, request = "valid", rng.choice(requests["valid"])
        elif rng.random() < 0.8:
            kind, request = "invalid", rng.choice(requests["invalid"])
        else:
            kind, request = "garbage", post(port, path, b"{nope" + b"x" * rng.randint(0, 9000))
        start = time.perf_counter()
        try:
            if streams is None:
                streams = await asyncio.open_connection("127.0.0.1", port)
            async with asyncio.timeout(30):
                status, keep = await exchange(*streams, request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as e:
            statuses[(kind, type(e).__name__)] += 1
            keep = False
        else:
            statuses[(kind, status)] += 1
            latencies.append((time.perf_counter() - start, kind))
        if not keep and streams is not None:
            streams[1].close()
            streams = None
    if streams is not None:
        streams[1].close()


async def burst(port, seconds, connection_ids, path):
    latencies, statuses = [], Counter()
    until = time.perf_counter() + seconds
    start = time.perf_counter()
    await asyncio.gather(*(connection(port, until, latencies, statuses, random.Random(k), path) for k in connection_ids))
    return latencies, statuses, time.perf_counter() - start


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def client(port, seconds, connection_ids, go, results, cores, path):
    """One client process: its share of the connections, started with the others."""
    if cores:
        os.sched_setaffinity(0, cores)
    go.wait()
    results.put(asyncio.run(burst(port, seconds, connection_ids, path)))


def server_cpu_seconds(pid: int) -> float | None:
    """The user + system CPU time a process and its running children (--workers' processes) have used so far
    (Linux /proc; None elsewhere)."""
    stats = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()  # from field 3, state, on
        except OSError:  # gone meanwhile
            continue
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid; utime + stime
    if pid not in stats:
        return None
    ticks = sum(cpu for p, (ppid, cpu) in stats.items() if p == pid or ppid == pid)
    return ticks / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds() -> float:
    """The CPU time of this process and of its finished children (the client processes, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load(port, seconds, connections, clients, cores=None, path="/api/generate"):
    """Connection k (its requests drawn with seed k) goes to client k % clients; every client starts at once."""
    if clients == 1:
        if cores:
            os.sched_setaffinity(0, cores)
        return asyncio.run(burst(port, seconds, range(connections), path))
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    procs = [context.Process(target=client, args=(port, seconds, range(c, connections, clients), go, results, cores, path))
             for c in range(clients)]
    for proc in procs:
        proc.start()
    time.sleep(2)  # the clients start up
    go.set()
    parts = [results.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    statuses = sum((counts for _, counts, _ in parts), Counter())
    return [x for lat, _, _ in parts for x in lat], statuses, max(elapsed for _, _, elapsed in parts)


def measure(run, args, pythonpath=None, workers=1) -> dict:
    """One burst against a server of its own: the figures, printed and returned."""
    cores = sorted(os.sched_getaffinity(0))
    server_cores, client_cores = (cores[:args.server_cores], cores[args.server_cores:]) if args.server_cores else (None, None)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
    path, scratch = "/api/generate", None
    if args.workspace:  # the run in a workspace of its own, served from /api/runs/served/
        scratch = tempfile.TemporaryDirectory(prefix="serve-load-")
        shutil.copytree(run, Path(scratch.name) / "served")
        run, path = scratch.name, "/api/runs/served/generate"
    command = [sys.executable, "-m", "makemore", "serve", run, "--port", str(port), "--device", args.device]
    server = subprocess.Popen(command + (["--workers", str(workers)] if workers > 1 else []), env=env,
                              preexec_fn=(lambda: os.sched_setaffinity(0, server_cores)) if server_cores else None)
    try:
        for _ in range(300):
            if healthy(port):
                break
            time.sleep(0.2)
        time.sleep(1)  # with --workers, every process up, not only the first
        if args.workspace:  # the run is loaded by its first request: made here, as serve RUN loads it at its start
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}", method="POST",
                                                          headers={"Content-Type": "application/json"}), timeout=60)
        training = start_training(port, args.workspace) if args.workspace else None
        cpu_before, client_before = server_cpu_seconds(server.pid), client_cpu_seconds()
        latencies, statuses, elapsed = load(port, args.seconds, args.connections, args.clients, client_cores, path)
        cpu_after, client_after = server_cpu_seconds(server.pid), client_cpu_seconds()
        alive = healthy(port) and server.poll() is None
        if training:
            after = get(port, f"/api/runs/{training['name']}")
            print(f"the training of {args.workspace} ran throughout: step {training['step']:,} -> {after['step']:,} "
                  f"of {after['steps']:,} during the burst, {after['state']} at its end")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if scratch:
            scratch.cleanup()
    valid = sorted(t for t, kind in latencies if kind == "valid")
    latencies = sorted(t for t, _ in latencies)
    total = sum(statuses.values())
    p = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    where = f"; server on {args.server_cores} of {len(cores)} cores, clients on the rest" if args.server_cores else ""
    print(f"{args.connections} connections from {args.clients} client process(es){where} for {elapsed:.1f} s: "
          f"{total:,} requests, {total / elapsed:,.1f} requests/s")
    if cpu_before is not None and cpu_after is not None and total:
        # the server's own cost, whatever the client's: on a machine where the client takes cores, the fairer figure
        print(f"server CPU: {cpu_after - cpu_before:.1f} s, {1000 * (cpu_after - cpu_before) / total:.2f} ms a request; "
              f"clients' CPU: {client_after - client_before:.1f} s, {1000 * (client_after - client_before) / total:.2f} ms")
    print(f"latency p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms, max {1000 * latencies[-1]:.1f} ms; generation "
          f"answers (the valid requests) p99 {1000 * valid[min(len(valid) - 1, int(0.99 * len(valid)))]:.1f} ms")
    for (kind, status), count in sorted(statuses.items(), key=str):
        print(f"  {kind:8} {status}: {count:,}")
    errors_5xx = sum(c for (_, s), c in statuses.items() if isinstance(s, int) and s >= 500)
    failures = sum(c for (_, s), c in statuses.items() if not isinstance(s, int))
    print(f"5xx: {errors_5xx}; connection errors: {failures}; server up after the burst: {alive}", flush=True)
    return {"rate": total / elapsed, "p99": p(0.99), "ok": errors_5xx == 0 and failures == 0 and alive}


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read())


def start_training(port: int, data: str) -> dict:
    """A list uploaded to the workspace, its training under way (its first steps logged): its status."""
    body = Path(data).read_bytes()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/runs?name=load-training", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        name = json.loads(response.read())["name"]
    for _ in range(600):
        status = get(port, f"/api/runs/{name}")
        if status["state"] == "training" and status["step"] > 0:
            return status
        if status["state"] not in ("queued", "training"):
            raise SystemExit(f"the training of {data} ended before the burst: {status['state']} {status['error']}")
        time.sleep(0.1)
    raise SystemExit(f"the training of {data} did not start in 60 s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="the server's processes (makemore serve --workers)")
    parser.add_argument("--clients", type=int, default=1, help="client processes the connections are spread over")
    parser.add_argument("--device", default="cpu", help="the server's device")
    parser.add_argument("--server-cores", type=int, default=0,
                        help="the server on this many of the cores, the clients on the others (0: all share all)")
    parser.add_argument("--baseline", nargs=2, metavar=("SRC", "RUN"),
                        help="the anchor: another checkout's src/ folder and the run its server serves")
    parser.add_argument("--rounds", type=int, default=1, help="bursts of each server, in turn")
    parser.add_argument("--workspace", metavar="LIST", help="serve the run from a workspace and train LIST (a text "
                                                             "file) in it throughout the burst")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    if args.server_cores and not 0 < args.server_cores < cores:
        parser.error(f"--server-cores: expected 1 to {cores - 1} of the {cores} cores")
    if args.baseline and not (Path(args.baseline[0]) / "makemore").is_dir():
        parser.error(f"--baseline: {args.baseline[0]} holds no makemore package (give a checkout's src/ folder)")
    ok, ratios = True, []
    for r in range(args.rounds):
        if args.baseline:
            print(f"== round {r + 1}: baseline ({args.baseline[0]})", flush=True)
            before = measure(args.baseline[1], args, pythonpath=str(Path(args.baseline[0]).resolve()))
            print(f"== round {r + 1}: this checkout, --workers {args.workers}", flush=True)
        after = measure(args.run, args, workers=args.workers)
        ok = ok and after["ok"]
        if args.baseline:
            ratios.append(after["rate"] / before["rate"])
            print(f"round {r + 1}: {after['rate']:,.1f} / {before['rate']:,.1f} requests/s = {ratios[-1]:.2f}x; "
                  f"p99 {after['p99']:,.1f} ms against {before['p99']:,.1f} ms", flush=True)
    if ratios:
        print(f"requests/s against the baseline: {', '.join(f'{x:.2f}x' for x in ratios)}; "
              f"median {statistics.median(ratios):.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
