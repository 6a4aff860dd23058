"""``ferry deploy docker|k8s``: packaging a registered version for production."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of

RefArgument = Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION or NAME.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def docker(
    ctx: typer.Context,
    ref: RefArgument,
    out: Annotated[Path, typer.Option("--out", help="The folder to write (new or empty).")],
    host: Annotated[
        str,
        typer.Option(
            help="The address the image listens on; 0.0.0.0 opens it to `docker run -p` "
            "without asking at run time (-e FERRY_SERVE_HOST=0.0.0.0)."
        ),
    ] = "127.0.0.1",
    base_image: Annotated[
        str | None,
        typer.Option(
            help="The image to start from, pinned by digest or exact tag (default: "
            "python:<the model's Python>-slim-bookworm)."
        ),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Write a Docker build context that serves REF: Dockerfile, requirements.txt, a
    ferryml wheel and the model, every file checked against the registry; the image runs
    as an unprivileged user."""
    from ferryml.serving.packaging import (
        MODEL_DIR,
        PORT,
        k8s_name,
        read_exported,
        run_flags,
        write_docker_context,
    )

    context = write_docker_context(settings_of(ctx), ref, out, host=host, base_image=base_image)
    exported = read_exported(context / MODEL_DIR)
    wheels = sorted(p.name for p in (context / "wheels").glob("*.whl"))
    if json:
        render.print_json(
            {
                "context": str(context),
                "model": exported.name,
                "version": exported.version,
                "package_digest": exported.package_digest,
                "wheels": wheels,
            }
        )
        return
    image = f"{k8s_name(exported.name)}:{exported.version}"
    source = "a wheel built from its source" if wheels else "the package index"
    render.console.print(
        f"Wrote a Docker build context for {exported.uri} to {context} "
        f"(ferryml from {source}). Build and run it:\n"
        f"  docker build -t {image} {context}\n"
        f"  docker run --rm {run_flags(host)}-p {PORT}:{PORT} {image}"
    )


def k8s(
    ctx: typer.Context,
    ref: RefArgument,
    out: Annotated[Path, typer.Option("--out", help="The folder for the manifests.")],
    image: Annotated[str, typer.Option(help="The image to run, built from `ferry deploy docker`.")],
    replicas: Annotated[int, typer.Option(help="Pods to start with (the HPA scales).")] = 2,
    json: JsonFlag = False,
) -> None:
    """Write Kubernetes manifests for REF: a Deployment (probes on /health and /ready), a
    Service on port 80 and a HorizontalPodAutoscaler on CPU."""
    from ferryml.serving.kubernetes import write_k8s_manifests

    paths = write_k8s_manifests(
        settings_of(ctx),
        ref,
        out,
        image=image,
        replicas=replicas,
        min_replicas=max(1, min(2, replicas)),
        max_replicas=max(10, replicas),
    )
    if json:
        render.print_json({"files": [str(p) for p in paths], "image": image})
        return
    render.console.print(
        f"Wrote {', '.join(p.name for p in paths)} to {out}. Apply them:\n  kubectl apply -f {out}"
    )
