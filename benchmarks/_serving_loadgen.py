"""Fallback load generator of benchmarks/serving.py, for machines where wrk cannot be had:
stdlib asyncio, HTTP/1.1 keep-alive, CONNS connections each sending one request at a time.
Run in its own process; bounded by DURATION seconds and MAX_REQUESTS requests.

Usage: python _serving_loadgen.py URL BODY_FILE CONNS DURATION MAX_REQUESTS TIMEOUT
Prints one line "SERVINGBENCH {json}" with the same fields as _serving_wrk.lua.
"""

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


def post_request(url: str, body_file: str) -> tuple[str, int, bytes]:
    """The host, port and bytes of a keep-alive POST of BODY_FILE's JSON to URL."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    with open(body_file, "rb") as f:
        body = f.read()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return host, port, request


def summary(
    latencies: list[float],
    codes: dict[int, int],
    errors: dict[str, int],
    elapsed: float,
    nbytes: int,
) -> dict[str, object]:
    """The fields of _serving_wrk.lua's SERVINGBENCH line (times in µs)."""
    latencies.sort()

    def pct(p: float) -> int:
        if not latencies:
            return 0
        return int(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6)

    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "bytes": nbytes,
        **errors,
        "status": sum(n for s, n in codes.items() if s > 399),
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "max_us": int(latencies[-1] * 1e6) if latencies else 0,
        "mean_us": sum(latencies) / len(latencies) * 1e6 if latencies else 0.0,
        "codes": {str(k): v for k, v in codes.items()},
    }


async def main() -> None:
    conns, duration = int(sys.argv[3]), float(sys.argv[4])
    max_requests, timeout = int(sys.argv[5]), float(sys.argv[6])
    host, port, request = post_request(sys.argv[1], sys.argv[2])
    latencies: list[float] = []
    codes: dict[int, int] = {}
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    sent = 0
    nbytes = 0
    start = time.perf_counter()
    deadline = start + duration

    async def read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
        }
        size = len(head)
        if "content-length" in headers:
            size += len(await reader.readexactly(int(headers["content-length"])))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = await reader.readuntil(b"\r\n")
                n = int(line.split(b";")[0], 16)
                size += len(line) + len(await reader.readexactly(n + 2))
                if n == 0:
                    break
        return status, size

    async def connection() -> None:
        nonlocal sent, nbytes
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < deadline and sent < max_requests:
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), timeout
                    )
                except (TimeoutError, OSError):
                    errors["connect"] += 1
                    await asyncio.sleep(0.01)
                    continue
            assert writer is not None
            sent += 1
            t = time.perf_counter()
            try:
                writer.write(request)
                await writer.drain()
            except OSError:
                errors["write"] += 1
                writer.close()
                writer = None
                continue
            try:
                status, size = await asyncio.wait_for(read_response(reader), timeout)
            except TimeoutError:
                errors["timeout"] += 1
                writer.close()
                writer = None
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors["read"] += 1
                writer.close()
                writer = None
                continue
            latencies.append(time.perf_counter() - t)
            codes[status] = codes.get(status, 0) + 1
            nbytes += size
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(conns)))
    elapsed = time.perf_counter() - start
    doc = summary(latencies, codes, errors, elapsed, nbytes)
    print("SERVINGBENCH " + json.dumps(doc), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
