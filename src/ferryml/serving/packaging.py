"""Packaging for production: a registered version exported to a folder that checks itself
when loaded, and a Docker build context whose image serves that folder (Kubernetes
manifests that run the image are in ``ferryml.serving.kubernetes``).

An exported folder holds the package's files under their relative paths, the package's
metadata file byte for byte (``ferry-model.json``, whose blake3 digest names the package)
and ``model.json``, the registry's record of the version. ``load_exported`` checks the
metadata against the recorded digest and every file against the metadata before anything
is deserialized, as loading from the registry does.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ferryml.config import CONFIG_FILE as CONFIG
from ferryml.config import Settings
from ferryml.errors import (
    AlreadyExists,
    Conflict,
    FerryError,
    IntegrityError,
    InvalidArgument,
    NotFound,
)
from ferryml.registry.models import Registry
from ferryml.registry.package import METADATA, LoadedModel, PackageMeta, read_background
from ferryml.store.artifacts import digest_bytes, digest_file
from ferryml.store.entities import ModelVersion

__all__ = [
    "APP_DIR",
    "FERRY_HOME",
    "HOST_ENV",
    "MODEL_DIR",
    "MODEL_INFO",
    "PORT",
    "ExportedModel",
    "export_model",
    "export_package",
    "k8s_name",
    "load_exported",
    "read_exported",
    "run_flags",
    "write_docker_context",
]

MODEL_DIR = "model"  # the exported folder inside an output folder or build context
MODEL_INFO = "model.json"
PORT = 8080  # the port the image serves on
APP_DIR = "/app"  # the build context's place in the image
FERRY_HOME = "/var/lib/ferry"  # the image's FERRY_HOME, writable by its user
UID = 10001  # the image's user; numeric, so Kubernetes can check runAsNonRoot
FORMAT = 1
HOST_ENV = "FERRY_SERVE_HOST"  # the address ferry serve listens on; the image's default is
# loopback, so a container is reached from outside only when its runner asks for it
_ENTRYPOINT = ["ferry", "serve", "--package", f"{APP_DIR}/{MODEL_DIR}", "--port", str(PORT)]
_PINNED = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)")
_SOURCE_SKIP = {"__pycache__", "build", "dist", ".git", ".venv", ".ferry"}


# -- exporting and loading ------------------------------------------------------------


@dataclass(frozen=True)
class ExportedModel:
    """A registered version exported to ``folder``: its files, ``ferry-model.json`` and
    ``model.json``."""

    folder: Path
    model_version: ModelVersion  # the registry's record, as of the export
    metadata: PackageMeta

    @property
    def name(self) -> str:
        return self.model_version.name

    @property
    def version(self) -> int:
        return self.model_version.version

    @property
    def package_digest(self) -> str:
        return self.model_version.package_digest

    @property
    def flavor(self) -> str:
        return self.model_version.flavor

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def export_package(registry: Registry, ref: str, out_dir: str | os.PathLike[str]) -> ExportedModel:
    """Export the version ``ref`` names (``NAME@ALIAS``, ``NAME/VERSION``, ``NAME`` or a
    ``models:/`` URI) to ``out_dir/model/``, every file checked against its digest on the
    way. The folder appears whole or not at all.

    Raises:
        NotFound: no such model, version or alias.
        AlreadyExists: ``out_dir/model`` exists.
        IntegrityError: a stored file does not match its digest.
    """
    version = registry.version(ref.removeprefix("models:/"))
    target = Path(out_dir) / MODEL_DIR
    if target.exists():
        raise AlreadyExists(f"{target} exists already; remove it or export to another folder.")
    digest = version.package_digest
    data = registry.artifacts.get_bytes(digest)
    meta = PackageMeta.from_bytes(data, digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _staging(target) as tmp:
        for relative, file_digest in meta.files.items():
            dest = _inside(tmp, relative, digest)
            try:
                registry.artifacts.get_file(file_digest, dest)
            except IntegrityError as e:
                raise IntegrityError(
                    f"Model file {relative!r} of {version.name}/{version.version} does not "
                    "match the digest recorded when it was logged: it was changed or "
                    "corrupted, so it was not exported. Log and register the model again."
                ) from e
        (tmp / METADATA).write_bytes(data)
        info = {"format": FORMAT, **_plain_version(version)}
        (tmp / MODEL_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        _make_readable(tmp)  # an image's non-root user reads what root copied in
    return ExportedModel(target, version, meta)


def export_model(settings: Settings, ref: str, out_dir: str | os.PathLike[str]) -> ExportedModel:
    """``export_package`` over the stores ``settings`` name.

    >>> export_model(Settings.resolve(), "churn@champion", "build")  # doctest: +SKIP
    ExportedModel(folder=PosixPath('build/model'), ...)
    """
    registry = Registry(settings)
    try:
        return export_package(registry, ref, out_dir)
    finally:
        registry.close()


def read_exported(
    folder: str | os.PathLike[str], *, package_digest: str | None = None
) -> ExportedModel:
    """Read an exported folder's ``model.json`` and its metadata, checking the metadata's
    bytes against the recorded package digest (and ``package_digest``, when given). The
    model's files are not checked or read: ``load_exported`` does that.

    Raises:
        NotFound: ``folder`` holds no exported model.
        InvalidArgument: ``model.json`` is malformed.
        IntegrityError: the metadata does not hash to the package digest.
    """
    folder = Path(folder)
    info_path = folder / MODEL_INFO
    try:
        body = json.loads(info_path.read_bytes())
    except FileNotFoundError as e:
        raise NotFound(
            f"{folder} holds no exported model ({MODEL_INFO} is missing). Export one with "
            "`ferry deploy docker NAME@ALIAS --out DIR`; its model is DIR/model."
        ) from e
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"{info_path} cannot be read as JSON ({e}); export again.") from e
    version = _version_from(body, info_path)
    if package_digest is not None and package_digest != version.package_digest:
        raise IntegrityError(
            f"{folder} holds package {version.package_digest}, not the expected "
            f"{package_digest}: deploy the package that was meant."
        )
    try:
        data = (folder / METADATA).read_bytes()
    except FileNotFoundError as e:
        raise IntegrityError(
            f"{METADATA} is missing from exported model {folder}; export the model again."
        ) from e
    if digest_bytes(data).digest != version.package_digest:
        raise IntegrityError(
            f"{METADATA} in {folder} does not hash to the package digest "
            f"{version.package_digest} recorded in {MODEL_INFO}: it was changed or corrupted, "
            "so the model was not loaded. Export the model again."
        )
    return ExportedModel(folder, version, PackageMeta.from_bytes(data, version.package_digest))


def load_exported(
    folder: str | os.PathLike[str],
    *,
    package_digest: str | None = None,
    trust: Sequence[str] = (),
    root: Path | None = None,
) -> LoadedModel:
    """Load an exported model after checking its metadata against the recorded package
    digest and every file against the metadata; nothing is deserialized before that.
    Each file is checked on a private copy, which is what gets loaded, so the folder cannot
    change between the check and the load.

    Args:
        folder: the exported folder (``DIR/model``).
        package_digest: the package expected, to refuse any other.
        trust: public keys (``ferry.yaml``'s ``trust:``, relative to ``root``); when given,
            the package loads only if one of them signed it.

    Returns:
        The model, whose ``version`` is the registry's record of it as of the export.

    Raises:
        NotFound: ``folder`` holds no exported model.
        InvalidArgument: ``model.json`` is malformed, or its flavor is unknown.
        IntegrityError: a file is missing or changed, or the package is not signed by a
            trusted key; the message names it.
    """
    from ferryml.registry.flavors import get_flavor
    from ferryml.registry.signing import check_trusted

    exported = read_exported(folder, package_digest=package_digest)
    version = exported.model_version
    what = f"Model {version.name}/{version.version} in {exported.folder}"
    check_trusted(exported.package_digest, version.tags, trust, what, root=root)
    meta = exported.metadata
    flavor = get_flavor(meta.flavor)
    with tempfile.TemporaryDirectory(prefix="ferry-model-") as tmp:
        private = Path(tmp)
        for relative, file_digest in meta.files.items():
            source = _inside(exported.folder, relative, exported.package_digest)
            copy = _inside(private, relative, exported.package_digest)
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source, copy)
            except FileNotFoundError as e:
                raise IntegrityError(
                    f"Model file {relative!r} is missing from exported model "
                    f"{exported.folder}; export the model again."
                ) from e
            if digest_file(copy).digest != file_digest:
                raise IntegrityError(
                    f"Model file {relative!r} in {exported.folder} does not match the digest "
                    f"in its package metadata: it was changed or corrupted, so it was not "
                    "loaded. Export the model again."
                )
        predictor = flavor.load(private)
        background = read_background(private)
    return LoadedModel(meta, predictor, exported.uri, exported.model_version, background=background)


def _plain_version(version: ModelVersion) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return dict(value)
        return list(value) if isinstance(value, tuple) else value

    return {f.name: plain(getattr(version, f.name)) for f in dataclasses.fields(version)}


def _version_from(body: Any, path: Path) -> ModelVersion:
    known = {f.name for f in dataclasses.fields(ModelVersion)}
    if not isinstance(body, dict):
        raise InvalidArgument(f"{path} is not a JSON object; export the model again.")
    values = {k: v for k, v in body.items() if k in known}
    for key in ("data_versions", "aliases"):
        values[key] = tuple(values.get(key) or ())
    for key in ("metrics", "tags"):
        values[key] = dict(values.get(key) or {})
    try:
        version = ModelVersion(**values)
    except TypeError as e:
        raise InvalidArgument(f"{path} is not a model record ({e}); export again.") from e
    if not (
        isinstance(version.name, str)
        and isinstance(version.version, int)
        and isinstance(version.package_digest, str)
        and re.fullmatch(r"[0-9a-f]{64}", version.package_digest)
    ):
        raise InvalidArgument(
            f"{path} has a malformed name, version or package_digest; export the model again."
        )
    return version


def _inside(root: Path, relative: str, digest: str) -> Path:
    """``root/relative``, for a relative path that stays inside ``root``."""
    parts = PurePosixPath(relative).parts
    if (
        not parts
        or PurePosixPath(relative).is_absolute()
        or ".." in parts
        or relative in (METADATA, MODEL_INFO)
    ):
        raise IntegrityError(
            f"Package {digest} names a file {relative!r} outside its folder or in place of "
            "its metadata; it was not loaded. Log and register the model again."
        )
    return root.joinpath(*parts)


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that becomes ``target`` if the block succeeds,
    and disappears if it fails."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp's 0o700 would lock the image's user out
        try:
            os.rename(tmp, target)  # replaces an empty folder, never a full one
        except OSError as e:
            raise AlreadyExists(
                f"{target} exists and is not empty; remove it or choose another folder."
            ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _make_readable(root: Path) -> None:
    for path in root.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


# -- Docker ---------------------------------------------------------------------------


def write_docker_context(
    settings: Settings,
    ref: str,
    out_dir: str | os.PathLike[str],
    *,
    wheel: bool = True,
    host: str = "127.0.0.1",
    base_image: str | None = None,
) -> Path:
    """Write a Docker build context that serves the version ``ref`` names: ``model/``
    (exported), ``requirements.txt`` (ferryml and the model's packages, pinned),
    ``wheels/`` (ferryml built from the installed project's source), ``Dockerfile`` and
    ``.dockerignore``. ``docker build -t IMAGE out_dir`` then builds the image, whose
    entry point is ``ferry serve --package /app/model --port 8080``, listening on ``host``
    (``FERRY_SERVE_HOST``): loopback unless asked, so ``docker run -e
    FERRY_SERVE_HOST=0.0.0.0 -p 8080:8080 IMAGE`` (or ``host="0.0.0.0"``) opens it.

    When ferryml was not installed from a source folder (or ``wheel`` is False), no wheel
    is built and the image installs ``ferryml==<this version>`` from the package index.

    The image starts from ``base_image``, pinned by digest (``python@sha256:…``) or by an
    exact tag (``python:3.11.7-slim-bookworm``); by default the official Python image of
    the exact version that logged the model. It runs as an unprivileged user (uid 10001).
    With ``trust:`` in ferry.yaml the package must be signed by a trusted key, and the
    image gets a ``ferry.yaml`` with those keys, so it refuses any other package too.

    Returns:
        ``out_dir``, written whole or not at all.

    Raises:
        NotFound: no such model, version or alias.
        AlreadyExists: ``out_dir`` exists and is not empty.
        Conflict: the model needs another version of a package than ferryml does.
        IntegrityError: ``trust:`` is set and no trusted key signed the package.
        InvalidArgument: ``base_image`` is not pinned.
        FerryError: building the ferryml wheel failed.
    """
    from ferryml.registry.signing import check_trusted, public_key_line, read_public_key

    if base_image is not None:
        _check_pinned(base_image)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AlreadyExists(f"{out} exists and is not empty; remove it or choose another --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _staging(out) as tmp:
        exported = export_model(settings, ref, tmp)
        version = exported.model_version
        what = f"Model {version.name}/{version.version}"
        check_trusted(
            exported.package_digest, version.tags, settings.trust, what, root=settings.root
        )
        if settings.trust:  # the image checks the signature again, at each start
            keys = [public_key_line(read_public_key(k, settings.root)) for k in settings.trust]
            (tmp / CONFIG).write_text("trust:\n" + "".join(f"  - {k}\n" for k in keys))
        requirements = _requirements(exported.metadata)
        source = _source_root() if wheel else None
        if source is not None:
            _build_wheel(source, tmp / "wheels")
        (tmp / "requirements.txt").write_text(
            f"# {exported.uri} (package {exported.package_digest})\n"
            + ("# ferryml itself: wheels/, built from its source\n" if source else "")
            + "\n".join(requirements)
            + "\n"
        )
        image = base_image or _base_image(exported.metadata.python)
        trusts = bool(settings.trust)
        dockerfile = _dockerfile(
            exported, ref, wheels=source is not None, host=host, base=image, trust=trusts
        )
        (tmp / "Dockerfile").write_text(dockerfile)
        (tmp / ".dockerignore").write_text(
            "# Only what the Dockerfile copies\n*\n!requirements.txt\n!wheels/\n!model/\n"
            + (f"!{CONFIG}\n" if trusts else "")
        )
        _make_readable(tmp)
    return out


def _requirements(meta: PackageMeta) -> list[str]:
    """``ferryml==<version>`` and the model's own requirements, checked against ferryml's."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    version = importlib.metadata.version("ferryml")
    ours = {}
    for line in importlib.metadata.requires("ferryml") or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            ours[canonicalize_name(requirement.name)] = requirement
    lines = [f"ferryml=={version}"]
    for wanted in meta.requirements:
        pinned = _pinned(wanted)
        theirs = ours.get(canonicalize_name(pinned[0])) if pinned is not None else None
        if pinned is not None and theirs is not None:
            try:
                fits = theirs.specifier.contains(pinned[1], prereleases=True)
            except InvalidRequirement:
                fits = True  # not a version we can compare: pip decides at build time
            if not fits:
                raise Conflict(
                    f"The model needs {wanted} but ferryml {version} needs {theirs}; one image "
                    f"cannot hold both. Retrain and log the model with {theirs}, or deploy it "
                    "with the ferryml version it was logged with."
                )
        if wanted not in lines:
            lines.append(wanted)
    return lines


def _pinned(requirement: str) -> tuple[str, str] | None:
    """(canonical name, version) of ``name[extras]==version``; None for other forms."""
    match = _PINNED.match(requirement)
    if match is None:
        return None
    return re.sub(r"[-_.]+", "-", match[1]).lower(), match[2]


def _source_root() -> Path | None:
    """The folder ferryml was installed from (``pip install -e .``), per its
    ``direct_url.json``; None when it came from a wheel or an index."""
    try:
        text = importlib.metadata.distribution("ferryml").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    try:
        info = json.loads(text or "null")
    except ValueError:
        return None
    if not isinstance(info, dict) or "dir_info" not in info:
        return None
    url = urllib.parse.urlparse(str(info.get("url", "")))
    if url.scheme != "file":
        return None
    root = Path(urllib.request.url2pathname(url.path))
    return root if (root / "pyproject.toml").is_file() else None


def _build_wheel(source: Path, wheels: Path) -> Path:
    """Build ferryml's wheel from a copy of ``source``: an in-place build would leave
    ``build/`` in the project, whose stale modules later wheels would pick up."""
    with tempfile.TemporaryDirectory(prefix="ferry-build-") as tmp:
        copy = Path(tmp) / "ferryml"
        if (source / "src").is_dir():
            copy.mkdir()
            for path in source.iterdir():
                if path.is_file():
                    shutil.copy2(path, copy / path.name)
            shutil.copytree(source / "src", copy / "src", ignore=_ignore_source)
        else:
            shutil.copytree(source, copy, ignore=_ignore_source)
        command = [sys.executable, "-m", "pip", "wheel", str(copy), "--no-deps"]
        command += ["--quiet", "-w", str(wheels)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise FerryError(
            f"Building the ferryml wheel from {source} failed ({tail}). Fix the build, or "
            "install ferryml from the package index in the image (--no-wheel)."
        )
    return next(wheels.glob("ferryml-*.whl"))


def _ignore_source(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SOURCE_SKIP or n.endswith((".egg-info", ".pyc"))}


_PINNED_IMAGE = re.compile(r"[^\s@]+(@sha256:[0-9a-f]{64}|:[^\s:@/]*\d+\.\d+\.\d+[^\s:@/]*)")


def _base_image(python: str) -> str:
    """The official image of exactly this Python: a tag that names the patch release and
    the Debian release, so a rebuild starts from the same system."""
    return f"python:{python}-slim-bookworm"


def _check_pinned(image: str) -> None:
    if not _PINNED_IMAGE.fullmatch(image):
        raise InvalidArgument(
            f"Base image {image!r} is not pinned: give a digest (python@sha256:...) or an "
            "exact tag (python:3.11.7-slim-bookworm), so that every build starts from the "
            "same image."
        )


def _dockerfile(
    exported: ExportedModel,
    ref: str,
    *,
    wheels: bool,
    host: str,
    base: str,
    trust: bool = False,
) -> str:
    install = "wheels/*.whl -r requirements.txt" if wheels else "-r requirements.txt"
    health = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{PORT}/health', timeout=4)"
    )
    image = f"{k8s_name(exported.name)}:{exported.version}"
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# Serves {exported.uri} ({ref}), package {exported.package_digest}.",
        f"# Written by ferryml {importlib.metadata.version('ferryml')}. Build and run:",
        f"#   docker build -t {image} .",
        f"#   docker run --rm {run_flags(host)}-p {PORT}:{PORT} {image}",
        f"FROM {base}",
        "",
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1 \\",
        f"    FERRY_HOME={FERRY_HOME} \\",
        f"    {HOST_ENV}={host}",
        f"WORKDIR {APP_DIR}",
        "COPY requirements.txt ./",
        *(["COPY wheels/ wheels/"] if wheels else []),
        f"RUN pip install --no-cache-dir {install}",
        f"RUN useradd --system --uid {UID} --home-dir {FERRY_HOME} --create-home ferry",
        f"COPY {MODEL_DIR}/ {MODEL_DIR}/",
        *(
            [f"# {CONFIG}'s trust: the keys the package must be signed by", f"COPY {CONFIG} ./"]
            if trust
            else []
        ),
        "",
        f"USER {UID}",
        f"EXPOSE {PORT}",
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \\",
        f"    CMD {json.dumps(['python', '-c', health])}",
        f"ENTRYPOINT {json.dumps(_ENTRYPOINT)}",
    ]
    return "\n".join(lines) + "\n"


def run_flags(host: str) -> str:
    """What ``docker run`` needs for ``-p`` to reach a server listening on ``host``."""
    return "" if host in ("0.0.0.0", "::") else f"-e {HOST_ENV}=0.0.0.0 "


def k8s_name(model_name: str) -> str:
    """A Kubernetes name for a model: lowercase letters, digits and ``-``, starting with a
    letter (a Service needs one), at most 63 characters. ``Churn_v2`` -> ``churn-v2``."""
    name = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"model-{name}".rstrip("-")
    return name[:63].rstrip("-")
