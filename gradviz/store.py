"""RunResults on disk, keyed by the config's cache key: precomputed runs appear with no training."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from gradviz.config import RunConfig
from gradviz.result import RunResult

LOG = logging.getLogger("gradviz")


def default_store_dir() -> Path:
    """GRADVIZ_STORE_DIR, else ~/.cache/gradviz/results."""
    folder = os.environ.get("GRADVIZ_STORE_DIR")
    return Path(folder).expanduser() if folder else Path.home() / ".cache" / "gradviz" / "results"


def _data_identity(info: dict) -> dict:
    """What makes two runs' data the same (the folder it was read from may move)."""
    return {k: info.get(k) for k in ("split", "val_split", "train_size", "val_size")}


class ResultStore:
    """One <key>.npz + <key>.json per run. An entry that cannot be read, was written by another
    result format, or was trained on other data than the caller has now is treated as missing
    (and overwritten by the next put): a stored run is never shown for the wrong thing."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_store_dir()

    def _base(self, config: RunConfig) -> Path:
        return self.root / config.cache_key()

    def has(self, config: RunConfig) -> bool:
        """Is there an entry to check? (cheap: no data needed to ask)"""
        return self._base(config).with_suffix(".json").is_file()

    def get(self, config: RunConfig, data_info: dict) -> RunResult | None:
        base = self._base(config)
        if not self.has(config):
            return None
        try:
            result = RunResult.load(base)
        except Exception as error:  # noqa: BLE001 - corrupt, truncated or old: retrain, never crash
            LOG.warning("ignoring unreadable stored run %s: %s", base, error)
            return None
        if result.config.cache_key() != config.cache_key() or _data_identity(result.data) != _data_identity(data_info):
            LOG.info("ignoring stale stored run %s (other config or data)", base)
            return None
        return result

    def configs(self) -> list[RunConfig]:
        """The configs of every readable entry (read from the small JSON halves only)."""
        found = []
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            try:
                found.append(RunConfig.from_dict(json.loads(path.read_text())["config"]))
            except Exception:  # noqa: BLE001 - a corrupt or foreign entry is simply not offered
                continue
        return found

    def put(self, result: RunResult) -> Path | None:
        """Store a finished (or diverged) run; interrupted runs are not worth keeping."""
        if result.stopped:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        base = self._base(result.config)
        tmp = base.with_name(base.name + "-partial")
        npz, js = result.save(tmp)
        # Rename into place so a reader never sees half a file (two files: JSON last, read first).
        npz.replace(base.with_suffix(".npz"))
        js.replace(base.with_suffix(".json"))
        return base
