"""Open-loop load generator of benchmarks/serving.py: requests at a constant arrival rate,
whatever the server's pace, so a slow server's queue shows in the latency instead of
slowing the load (a closed loop's "coordinated omission"). Each latency runs from the
request's scheduled time to its answer. Requests go over HTTP/1.1 keep-alive connections
from a pool: an idle one, else a new one up to MAX_CONNS, else the request waits for one
(its wait counted). Stdlib asyncio (uvloop when importable); bounded by DURATION seconds
of arrivals and TIMEOUT seconds a request.

Usage: python _serving_openloop.py URL BODY_FILE RATE DURATION MAX_CONNS TIMEOUT
Prints one line "SERVINGBENCH {json}" with the fields of _serving_wrk.lua, plus "rate"
(asked), "sent_rate" (achieved) and "lag_ms" (how far the sender fell behind its
schedule: a figure is only the server's while this stays small).
"""

import asyncio
import json
import sys
import time

from _serving_loadgen import post_request, summary  # beside this file


async def main() -> None:
    rate, duration = float(sys.argv[3]), float(sys.argv[4])
    max_conns, timeout = int(sys.argv[5]), float(sys.argv[6])
    host, port, request = post_request(sys.argv[1], sys.argv[2])
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    waiting: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
        asyncio.Queue()
    )
    opened = 0
    latencies: list[float] = []
    codes: dict[int, int] = {}
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    waiters = 0

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        nonlocal opened, waiters
        if idle:
            return idle.pop()
        if opened < max_conns:
            opened += 1
            try:
                return await asyncio.open_connection(host, port)
            except OSError:
                opened -= 1
                errors["connect"] += 1
                return None
        waiters += 1
        try:
            return await waiting.get()
        finally:
            waiters -= 1

    def release(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        nonlocal opened
        if conn is None:
            opened -= 1
            if waiters:  # a waiting request may open the freed slot
                waiting.put_nowait(None)
        elif waiters:
            waiting.put_nowait(conn)
        else:
            idle.append(conn)

    async def read_status(reader: asyncio.StreamReader) -> int:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        at = head.lower().find(b"content-length:")
        if at >= 0:
            end = head.find(b"\r\n", at)
            await reader.readexactly(int(head[at + 15 : end]))
        return status

    async def one(scheduled: float) -> None:
        conn = None
        while conn is None:
            conn = await connection()
            if conn is None and opened >= max_conns:
                continue
            if conn is None:
                if time.perf_counter() - scheduled > timeout:
                    return
                await asyncio.sleep(0.01)
        reader, writer = conn
        try:
            writer.write(request)
            status = await asyncio.wait_for(read_status(reader), timeout)
        except TimeoutError:
            errors["timeout"] += 1
            writer.close()
            release(None)
            return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors["read"] += 1
            writer.close()
            release(None)
            return
        latencies.append(time.perf_counter() - scheduled)
        codes[status] = codes.get(status, 0) + 1
        release(conn)

    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * duration)
    lag = 0.0
    start = time.perf_counter()
    i = 0
    while i < total:
        now = time.perf_counter()
        due = min(total, int((now - start) * rate) + 1)
        lag = max(lag, now - (start + i / rate))
        while i < due:
            task = asyncio.get_running_loop().create_task(one(start + i / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    sent = time.perf_counter() - start
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 5)
    elapsed = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    doc = {
        **summary(latencies, codes, errors, elapsed, 0),
        "rate": rate,
        "sent_rate": total / sent if sent > 0 else 0.0,
        "lag_ms": lag * 1000,
        "unanswered": total - len(latencies) - sum(errors.values()),
    }
    print("SERVINGBENCH " + json.dumps(doc), flush=True)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
