"""``ferry data profile`` and ``ferry data drift``: Parquet datasets larger than memory,
read here batch by batch or on a Dask cluster."""

from __future__ import annotations

import json as json_module
from pathlib import Path
from typing import Annotated, Any

import typer

from ferryml.cli import _render as render
from ferryml.errors import InvalidArgument

WhereOption = Annotated[
    list[str] | None,
    typer.Option("--where", help="COLUMN=VALUE the rows must match, e.g. date=2026-12-01."),
]
ExecutorOption = Annotated[
    str | None, typer.Option(help="local or dask (default: dask: in ferry.yaml, else local).")
]
AddressOption = Annotated[
    str | None, typer.Option(help="Dask scheduler, tcp://host:8786 (default: a LocalCluster).")
]
BatchOption = Annotated[int, typer.Option(help="Rows read at once.", min=1)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def profile(
    path: Annotated[str, typer.Argument(help="A Parquet file, folder or s3:// prefix.")],
    where: WhereOption = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the profile here as JSON (for `ferry data drift`).")
    ] = None,
    batch_rows: BatchOption = 250_000,
    executor: ExecutorOption = None,
    address: AddressOption = None,
    json: JsonFlag = False,
) -> None:
    """Profile a Parquet dataset larger than memory, batch by batch or on Dask workers."""
    from ferryml.data.dataset import profile_dataset

    found = profile_dataset(
        path, where=_where(where), batch_rows=batch_rows, executor=executor, address=address
    )
    if output is not None:
        output.write_text(json_module.dumps(found.to_dict()), encoding="utf-8")
    if json:
        render.print_json(found.to_dict())
        return
    render.console.print(
        f"{found.rows:,} rows, {len(found.columns)} columns"
        + (f"; profile written to {output}" if output is not None else "")
    )


def drift(
    reference: Annotated[
        str, typer.Argument(help="A profile JSON file (ferry data profile --output), or a dataset.")
    ],
    path: Annotated[
        str, typer.Argument(help="The current data: a Parquet file, folder or prefix.")
    ],
    where: WhereOption = None,
    prediction: Annotated[
        str | None, typer.Option(help="The column of the model's outputs, tested apart.")
    ] = None,
    batch_rows: BatchOption = 250_000,
    executor: ExecutorOption = None,
    address: AddressOption = None,
    json: JsonFlag = False,
) -> None:
    """Test a Parquet dataset (say, a day of logged predictions) for drift from a reference
    profile; exits 1 when the dataset drifted."""
    from ferryml.monitoring.dataset_drift import detect_dataset_drift

    report = detect_dataset_drift(
        _reference(reference),
        path,
        where=_where(where),
        prediction=prediction,
        batch_rows=batch_rows,
        executor=executor,
        address=address,
    )
    if json:
        render.print_json(report.to_dict())
    else:
        render.console.print(
            f"{report.current_rows:,} rows against {report.reference_rows:,}: "
            f"{len(report.drifted_columns)} of {len(report.columns)} columns drifted"
            + (f" ({', '.join(report.drifted_columns)})" if report.drifted_columns else "")
            + ("; dataset drift" if report.dataset_drift else "")
        )
    if report.dataset_drift:
        raise typer.Exit(1)


def _where(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    found: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise InvalidArgument(f"--where {pair!r} is not COLUMN=VALUE, e.g. date=2026-12-01.")
        found[name] = value
    return found


def _reference(text: str) -> Any:
    from ferryml.data.profile import Profile

    if not text.endswith(".json"):
        return text  # a dataset, profiled first
    try:
        data = json_module.loads(Path(text).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InvalidArgument(f"Reference profile {text!r} not found; check the path.") from e
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"Reference profile {text!r} is not JSON ({e}).") from e
    return Profile.from_dict(data)
