"""The registry's core: log and register models, resolve ``models:/`` and ``runs:/`` URIs,
load with every digest checked, point aliases (each move audited), and trace lineage."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from ferryml._identity import current_user
from ferryml._naming import check_name
from ferryml.config import Settings
from ferryml.errors import Conflict, InvalidArgument, NotFound
from ferryml.registry.package import METADATA, LoadedModel, PackageMeta, load_package
from ferryml.store.entities import ModelVersion, Run
from ferryml.store.factory import (
    open_artifact_store,
    open_dataset_store,
    open_deployment_store,
    open_registry_store,
    shared_part,
)

__all__ = ["Lineage", "Registry"]

_URI_HELP = (
    "Use models:/NAME@ALIAS, models:/NAME/VERSION, models:/NAME/latest or runs:/RUN_ID/PATH."
)


def check_model_name(name: str) -> str:
    return check_name(name, "Model", "churn")


@dataclass(frozen=True)
class Lineage:
    """Where a version came from: its run's params and metrics, the data versions the run
    read, the code commit and the environment."""

    version: ModelVersion
    run: Run | None
    data_versions: tuple[str, ...]
    commit: str | None
    dirty: bool | None
    environment: dict[str, str]


class Registry:
    """Registered models over the configured stores. The constructor does no I/O."""

    def __init__(self, settings: Settings | None = None, *, client: Any = None) -> None:
        self.settings = settings or (client.settings if client else Settings.resolve())
        self._store: Any = None
        self._artifacts: Any = None
        self._client: Any = client
        self._owns_client = client is None

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = open_registry_store(self.settings)
        return self._store

    @property
    def artifacts(self) -> Any:
        if self._artifacts is None:
            self._artifacts = open_artifact_store(self.settings)
        return self._artifacts

    @property
    def client(self) -> Any:
        if self._client is None:
            from ferryml.tracking.client import FerryClient

            self._client = FerryClient(self.settings)
        return self._client

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._artifacts is not None:  # over a team server, it holds connections
            self._artifacts.close()
            self._artifacts = None
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    # -- URIs ----------------------------------------------------------------------------

    def resolve(self, uri: str) -> tuple[str, ModelVersion | None]:
        """The package digest a URI names, and the registry version when it names one."""
        if not isinstance(uri, str):
            raise InvalidArgument(f"Model URI {uri!r} is not a string. {_URI_HELP}")
        if uri.startswith("models:/"):
            version = self.version(uri[len("models:/") :])
            return version.package_digest, version
        if uri.startswith("runs:/"):
            run_id, _, path = uri[len("runs:/") :].partition("/")
            path = path.strip("/") or "model"
            found = [
                a
                for a in self.client.list_artifacts(run_id, path)
                if a.path == f"{path}/{METADATA}"
            ]
            if not found:
                raise NotFound(
                    f"Run {run_id} has no model at {path!r}. Log one with "
                    "ferryml.log_model(model, name=...)."
                )
            return found[0].digest, None
        raise InvalidArgument(f"Model URI {uri!r} is not understood. {_URI_HELP}")

    def version(self, ref: str) -> ModelVersion:
        """``NAME@ALIAS``, ``NAME/VERSION``, ``NAME/latest`` or ``NAME`` (the latest)."""
        if "@" in ref:
            name, alias = ref.split("@", 1)
            check_model_name(name)
            return self.store.get_model_version(name, self.store.resolve_alias(name, alias))
        name, _, number = ref.partition("/")
        check_model_name(name)
        if number in ("", "latest"):
            latest = self.store.get_registered_model(name).latest_version
            if latest is None:
                raise NotFound(f"Model {name!r} has no versions yet.")
            return self.store.get_model_version(name, latest)
        if not number.isdigit():
            raise InvalidArgument(f"Version {number!r} in {ref!r} is not a number. {_URI_HELP}")
        return self.store.get_model_version(name, int(number))

    # -- logging and registering --------------------------------------------------------

    def log_model(
        self,
        run_id: str,
        model: Any,
        name: str = "model",
        *,
        signature: Any = None,
        input_example: Any = None,
        training_data: Any = None,
        flavor: str | None = None,
    ) -> tuple[str, PackageMeta]:
        """Store a model package as artifacts ``<name>/…`` of the run; returns its digest."""
        from ferryml.registry.flavors import flavor_for, get_flavor
        from ferryml.registry.package import background_sample, save_package
        from ferryml.registry.signature import Signature, infer_signature
        from ferryml.tracking._validation import check_artifact_path

        check_artifact_path(name)
        chosen = get_flavor(flavor) if flavor else flavor_for(model)
        if signature is not None and not isinstance(signature, Signature):
            signature = infer_signature(signature)
        if signature is None and input_example is not None:
            signature = infer_signature(input_example)
        if signature is None and training_data is not None:
            features = training_data
            signature = infer_signature(features)
        profile = background = None
        if training_data is not None:
            from ferryml.data.profile import profile_frame
            from ferryml.registry.signature import as_frame

            text = json.dumps(profile_frame(as_frame(training_data, None)).to_dict())
            profile = self.artifacts.put_bytes(text.encode()).digest
            background = background_sample(training_data, signature)
        digest, meta = save_package(
            model,
            self.artifacts,
            flavor=chosen,
            signature=signature,
            input_example=input_example,
            profile=profile,
            background=background,
        )
        for relative, file_digest in meta.files.items():
            self.client.log_blob(run_id, f"{name}/{relative}", file_digest, meta.sizes[relative])
        self.client.log_blob(run_id, f"{name}/{METADATA}", digest, len(meta.to_bytes()))
        self.client.flush()
        return digest, meta

    def register(self, uri: str, name: str, *, description: str = "") -> ModelVersion:
        """Make the model at ``uri`` (``runs:/ID/PATH``) the next version of ``name``."""
        check_model_name(name)
        digest, _ = self.resolve(uri)
        meta = PackageMeta.from_bytes(self.artifacts.get_bytes(digest), digest)
        run_id = uri[len("runs:/") :].split("/", 1)[0] if uri.startswith("runs:/") else None
        data_versions: tuple[str, ...] = ()
        profile = meta.profile
        if run_id is not None:
            run = self.client.get_run(run_id)
            data_versions = tuple(f"{i.name}@{i.version}" for i in run.inputs)
            profile = profile or self._input_profile(run)
        return self.store.create_model_version(
            name,
            package_digest=digest,
            flavor=meta.flavor,
            source=uri,
            run_id=run_id,
            user=current_user(),
            signature=json.dumps(meta.signature) if meta.signature else None,
            data_versions=data_versions,
            profile_digest=profile,
            description=description,
        )

    def _input_profile(self, run: Run) -> str | None:
        """The reference profile of the first table the training run read."""
        if not run.inputs:
            return None
        datasets = open_dataset_store(self.settings)
        try:
            for item in run.inputs:
                try:
                    version = datasets.get_dataset_version(item.name, int(item.version))
                except (NotFound, ValueError):
                    continue
                if version.profile_digest:
                    return version.profile_digest
        finally:
            datasets.close()
        return None

    # -- loading -------------------------------------------------------------------------

    def load(self, uri: str) -> LoadedModel:
        """Load a model, checking every file against the digests in the registry first,
        and its signature when ferry.yaml lists ``trust:`` keys.

        Raises:
            IntegrityError: a stored file was changed, or the package is not signed by a
                trusted key; it was not deserialized.
        """
        digest, version = self.resolve(uri)
        self.check_trusted(uri, digest, version)
        meta, predictor, background = load_package(self.artifacts, digest)
        return LoadedModel(meta, predictor, uri, version, background=background)

    def check_trusted(self, uri: str, digest: str, version: ModelVersion | None) -> None:
        """Refuse the package unless a trusted key signed it, when ferry.yaml's ``trust:``
        asks for signatures (see ``ferryml.registry.signing``). Raises IntegrityError."""
        if not self.settings.trust:
            return  # without importing the signing code (cryptography): a server starts sooner
        from ferryml.registry.signing import check_trusted

        what = f"Model {version.name}/{version.version}" if version else f"Model {uri}"
        tags = version.tags if version is not None else {}
        check_trusted(digest, tags, self.settings.trust, what, root=self.settings.root)

    def sign(self, ref: str, key_path: str | os.PathLike[str]) -> tuple[ModelVersion, str]:
        """Sign the package of the version ``ref`` names with the ed25519 private key in
        ``key_path``; the signature is kept with the version. Returns the version and the
        key's id.

        Raises:
            NotFound: no such version. InvalidArgument: the file holds no such key.
        """
        from ferryml.registry.signing import SIGNATURE_TAG, read_private_key, sign_digest

        key = read_private_key(key_path)
        version = self.version(ref.removeprefix("models:/"))
        tag, signature = sign_digest(key, version.package_digest)
        self.store.set_tag(version.name, version.version, tag, signature)
        return version, tag[len(SIGNATURE_TAG) :]

    # -- aliases and lineage -------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> int | None:
        check_model_name(name)
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*", alias or "") or alias == "latest":
            raise InvalidArgument(
                f"Alias {alias!r} is invalid: start with a letter; letters, digits, _ and -; "
                "'latest' is reserved."
            )
        return self.store.set_alias(name, alias, int(version), user=current_user(), reason=reason)

    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> int:
        """Remove an alias; returns the version it pointed at. Raises NotFound."""
        check_model_name(name)
        version = self.store.resolve_alias(name, alias)
        self.store.delete_alias(name, alias, user=current_user(), reason=reason)
        return int(version)

    def delete_version(self, name: str, version: int, *, reason: str = "") -> None:
        """Delete a version for good; `ferry gc` then reclaims its files.

        Raises NotFound, Conflict while an alias points at it or a deployment routes to it.
        """
        check_model_name(name)
        self._check_unrouted(name, {int(version)})
        self.store.delete_model_version(name, int(version), user=current_user(), reason=reason)

    def delete_model(self, name: str, *, reason: str = "") -> None:
        """Delete a model and its versions; `ferry gc` then reclaims their files.

        Raises NotFound, Conflict while it has aliases or a deployment serves it.
        """
        check_model_name(name)
        versions = {v.version for v in self.store.list_model_versions(name)}
        self._check_unrouted(name, versions)
        self.store.delete_registered_model(name, user=current_user(), reason=reason)

    def _check_unrouted(self, name: str, versions: set[int]) -> None:
        from ferryml.store.sql_deployments import SqlDeploymentStore

        # Over the registry's own open store: closing it is the registry's job.
        deployments = shared_part(self.store, SqlDeploymentStore) or open_deployment_store(
            self.settings
        )
        for deployment, spec in deployments.list_deployments():
            hit = sorted(r["version"] for r in spec["routes"] if spec["model"] == name)
            hit = [v for v in hit if v in versions]
            if hit:
                raise Conflict(
                    f"Deployment {deployment!r} routes to version {hit[0]} of model {name!r}; "
                    f"change its routes (`ferry deploy show {deployment}`) first."
                )

    def history(self, name: str) -> list[Any]:
        """The audit trail of model ``name``, oldest first (kept after it is deleted).

        Raises:
            NotFound: no model of that name ever existed.
        """
        events: list[Any] = self.store.events(name)
        if not events:
            self.store.get_registered_model(name)  # raises NotFound with what to do
        return events

    def lineage(self, ref: str) -> Lineage:
        version = self.version(ref)
        run = self.client.get_run(version.run_id) if version.run_id else None
        tags = dict(run.data.tags) if run else {}
        environment = {
            k: v
            for k, v in tags.items()
            if k.startswith("ferry.") and not k.startswith("ferry.git.")
        }
        dirty = tags.get("ferry.git.dirty")
        return Lineage(
            version,
            run,
            version.data_versions,
            tags.get("ferry.git.commit"),
            None if dirty is None else dirty == "true",
            environment,
        )
