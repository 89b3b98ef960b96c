"""A bounded burst against makemore serve on 127.0.0.1: mixed valid and invalid requests from C connections
for S seconds. Reports requests/s, p50 / p99 latency, the count of each status, the server's CPU time per request
(Linux), and whether the server is still up. It fails (exit 1) on any 5xx or a dead server.

    python benchmarks/serve_load.py RUN [--seconds 30] [--connections 32] [--clients 1] [--device cpu]
                                        [--server-cores 0]

It starts `makemore serve RUN` itself on a free port and stops it at the end. --clients spreads the connections
over that many client processes: one httpx client tops out near a core's worth of requests, so on a machine
with cores to spare, several measure the server rather than the client; --server-cores K keeps the server on
K cores and the clients on the others, so that neither takes the other's.
"""

import argparse
import asyncio
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter

import httpx

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


async def connection(client, url, until, latencies, statuses, rng):
    while time.perf_counter() < until:
        if rng.random() < 0.7:
            body, kind = dict(rng.choice(VALID)), "valid"
        elif rng.random() < 0.8:
            body, kind = rng.choice(INVALID), "invalid"
        else:
            body, kind = None, "garbage"
        start = time.perf_counter()
        try:
            if body is None:
                r = await client.post(url + "/api/generate", content=b"{nope" + b"x" * rng.randint(0, 9000),
                                      headers={"content-type": "application/json"})
            else:
                r = await client.post(url + "/api/generate", json=body)
            statuses[(kind, r.status_code)] += 1
        except httpx.HTTPError as e:
            statuses[(kind, type(e).__name__)] += 1
            continue
        latencies.append(time.perf_counter() - start)


async def burst(url, seconds, connection_ids):
    latencies, statuses = [], Counter()
    limits = httpx.Limits(max_connections=len(connection_ids), max_keepalive_connections=len(connection_ids))
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        until = time.perf_counter() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(connection(client, url, until, latencies, statuses, random.Random(k))
                               for k in connection_ids))
        elapsed = time.perf_counter() - start
    return latencies, statuses, elapsed


def client(url, seconds, connection_ids, go, results, cores):
    """One client process: its share of the connections, started with the others."""
    if cores:
        os.sched_setaffinity(0, cores)
    go.wait()
    results.put(asyncio.run(burst(url, seconds, connection_ids)))


def cpu_seconds(pid: int) -> float | None:
    """The user + system CPU time a process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15 of stat


def load(url, seconds, connections, clients, cores=None):
    """Connection k (its requests drawn with seed k) goes to client k % clients; every client starts at once."""
    if clients == 1:
        if cores:
            os.sched_setaffinity(0, cores)
        return asyncio.run(burst(url, seconds, range(connections)))
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    procs = [context.Process(target=client, args=(url, seconds, range(c, connections, clients), go, results, cores))
             for c in range(clients)]
    for proc in procs:
        proc.start()
    time.sleep(2)  # the clients import httpx
    go.set()
    parts = [results.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    statuses = sum((counts for _, counts, _ in parts), Counter())
    return [x for lat, _, _ in parts for x in lat], statuses, max(elapsed for _, _, elapsed in parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--clients", type=int, default=1, help="client processes the connections are spread over")
    parser.add_argument("--device", default="cpu", help="the server's device")
    parser.add_argument("--server-cores", type=int, default=0,
                        help="the server on this many of the cores, the clients on the others (0: all share all)")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    if args.server_cores and not 0 < args.server_cores < len(cores):
        parser.error(f"--server-cores: expected 1 to {len(cores) - 1} of the {len(cores)} cores")
    server_cores, client_cores = (cores[:args.server_cores], cores[args.server_cores:]) if args.server_cores else (None, None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "makemore", "serve", args.run, "--port", str(port),
                               "--device", args.device],
                              preexec_fn=(lambda: os.sched_setaffinity(0, server_cores)) if server_cores else None)
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        cpu_before = cpu_seconds(server.pid)
        latencies, statuses, elapsed = load(url, args.seconds, args.connections, args.clients, client_cores)
        cpu_after = cpu_seconds(server.pid)
        alive = httpx.get(url + "/healthz", timeout=5).status_code == 200 and server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=10)
    latencies.sort()
    total = sum(statuses.values())
    p = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    where = f"; server on {args.server_cores} of {len(cores)} cores, clients on the rest" if args.server_cores else ""
    print(f"{args.connections} connections from {args.clients} client process(es){where} for {elapsed:.1f} s: "
          f"{total:,} requests, {total / elapsed:,.1f} requests/s")
    if cpu_before is not None and cpu_after is not None and total:
        # the server's own cost, whatever the client's: on a machine where the client takes cores, the fairer figure
        print(f"server CPU: {cpu_after - cpu_before:.1f} s, {1000 * (cpu_after - cpu_before) / total:.2f} ms a request")
    print(f"latency p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms, max {1000 * latencies[-1]:.1f} ms")
    for (kind, status), count in sorted(statuses.items(), key=str):
        print(f"  {kind:8} {status}: {count:,}")
    errors_5xx = sum(c for (_, s), c in statuses.items() if isinstance(s, int) and s >= 500)
    failures = sum(c for (_, s), c in statuses.items() if not isinstance(s, int))
    print(f"5xx: {errors_5xx}; connection errors: {failures}; server up after the burst: {alive}")
    return 0 if errors_5xx == 0 and failures == 0 and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
