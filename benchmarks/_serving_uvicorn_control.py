"""Controls for benchmarks/serving.py's sequential-latency figure: `ferry serve` with
several workers on the asyncio event loop instead of uvloop (the loop under which uvicorn's
multi-worker sockets keep Nagle's algorithm on, uvicorn issue #3149), either with ferryml's
own NoDelayHttp protocol (BENCH_PROTOCOL=ferryml) or with uvicorn's stock httptools protocol
(BENCH_PROTOCOL=stock). The stock one must show the ~40 ms delayed-ACK wait, or the
benchmark could not see it in ferryml either.

Usage: BENCH_PROTOCOL=stock|ferryml FERRY_HOME=... python _serving_uvicorn_control.py \
           serve cancer@champion --workers 2 ...
"""

import os
import sys

if __name__ == "__main__":  # uvicorn's workers are spawned: they import this module again
    from typing import Any

    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    import ferryml.server.main as server_main

    if os.environ.get("BENCH_PROTOCOL", "stock") == "stock":
        server_main.NoDelayHttp = HttpToolsProtocol  # type: ignore[assignment, misc]
    run = uvicorn.run

    def run_on_asyncio(*args: Any, **kwargs: Any) -> None:
        run(*args, **{**kwargs, "loop": "asyncio"})

    uvicorn.run = run_on_asyncio  # ferryml.server.main.serve imports uvicorn and calls this

    from ferryml.cli import main

    sys.argv[0] = "ferry"
    main()
