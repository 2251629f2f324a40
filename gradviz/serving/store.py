"""RunResults kept by config in a folder or any fsspec URL (file://, s3://, gs://... where their
packages are installed), shared by every server and worker: precomputed runs appear without
training, and a run trained anywhere is found everywhere.

Rule: each entry is one object, <cache key>.npz (its metadata inside), so a reader never sees half
a result. On a local disk it is written under a temporary name and renamed into place (rename is
atomic); on an object store a single upload is (S3 and GCS show an object whole or not at all).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import fsspec

from gradviz.config import RunConfig
from gradviz.result import RunResult

LOG = logging.getLogger("gradviz")


def default_store_dir() -> str:
    """GRADVIZ_STORE_DIR (a path or an fsspec URL), else ~/.cache/gradviz/results."""
    folder = os.environ.get("GRADVIZ_STORE_DIR")
    return os.path.expanduser(folder) if folder else str(Path.home() / ".cache" / "gradviz" / "results")


def _data_identity(info: dict) -> dict:
    """What makes two runs' data the same (the folder it was read from may move)."""
    return {k: info.get(k) for k in ("split", "val_split", "train_size", "val_size")}


class ResultStore:
    """One <key>.npz per run. An entry that cannot be read, was written by another result format,
    or was trained on other data than the caller has now is treated as missing (and overwritten
    by the next put): a stored run is never shown for the wrong thing."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = str(root) if root else default_store_dir()
        self.fs, self.path = fsspec.core.url_to_fs(self.root)
        self.local = "file" in self.fs.protocol if isinstance(self.fs.protocol, tuple) else self.fs.protocol == "file"

    def _entry(self, config: RunConfig) -> str:
        return f"{self.path.rstrip('/')}/{config.cache_key()}.npz"

    def has(self, config: RunConfig) -> bool:
        """Is there an entry to check? (cheap: no data needed to ask)"""
        return self.fs.exists(self._entry(config))

    def get(self, config: RunConfig, data_info: dict) -> RunResult | None:
        entry = self._entry(config)
        try:
            result = RunResult.from_bytes(self.fs.cat_file(entry))
        except FileNotFoundError:
            return None
        except Exception as error:  # noqa: BLE001 - corrupt, truncated or old: retrain, never crash
            LOG.warning("ignoring unreadable stored run %s: %s", entry, error)
            return None
        if result.config.cache_key() != config.cache_key() or _data_identity(result.data) != _data_identity(data_info):
            LOG.info("ignoring stale stored run %s (other config or data)", entry)
            return None
        return result

    def configs(self) -> list[RunConfig]:
        """The configs of every readable entry (their metadata only)."""
        found = []
        for entry in sorted(self.fs.glob(f"{self.path.rstrip('/')}/*.npz")):
            try:
                found.append(RunConfig.from_dict(RunResult.meta_of(self.fs.cat_file(entry))["config"]))
            except Exception:  # noqa: BLE001 - a corrupt or foreign entry is simply not offered
                continue
        return found

    def put(self, result: RunResult) -> str | None:
        """Store a finished (or diverged) run; interrupted runs are not worth keeping."""
        if result.stopped:
            return None
        entry = self._entry(result.config)
        data = result.to_bytes()
        if not self.local:
            self.fs.pipe_file(entry, data)  # one upload: readers see the old object or the new one
            return entry
        self.fs.makedirs(self.path, exist_ok=True)
        partial = f"{entry}.{uuid.uuid4().hex}.partial"  # unique: two writers never share one
        self.fs.pipe_file(partial, data)
        os.replace(partial, entry)  # atomic on one file system
        return entry
