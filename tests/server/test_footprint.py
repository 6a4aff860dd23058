"""The team server stays small: it manages deployments without loading the serving
runtime (pandas, pyarrow), which took its memory past 200 MB before the first request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_STARTED = """
import asyncio, sys
from ferryml.config import Settings
from ferryml.server._http import NoDelayHttp
from ferryml.server.team.app import create_team_app
from ferryml.serving.deployments import Deployments

app = create_team_app(Settings.resolve(home=sys.argv[1]), auth=False)

async def main():
    async with app.router.lifespan_context(app):
        Deployments(app.state.deployments.settings).list_deployments()

asyncio.run(main())
print(sorted({"pandas", "pyarrow", "numpy", "sklearn"} & set(sys.modules)))
"""


def test_the_team_server_starts_without_the_serving_runtime(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _STARTED, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
