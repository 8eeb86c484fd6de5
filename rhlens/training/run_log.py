"""Where training numbers go: a JSONL log in ``out_dir``, a tqdm bar, optionally Weights & Biases.

Only the main process (rank 0) writes. Each JSONL line is one record, e.g.
``{"step": 10, "loss": 1.23, "lr": 0.001, "grad_norm": 0.8, "tokens": 5120, "tokens_per_s": 8400.0}``
for a training step or ``{"step": 10, "eval_loss": 1.4}`` for an evaluation. ``wandb`` is imported
only when ``TrainConfig.wandb`` is True, so a default run never touches the network.
"""

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

METRICS_FILE = "metrics.jsonl"


def truncate_log(path: Path, last_step: int) -> None:
    """Drop records after ``last_step`` (a resumed run rewrites the steps it repeats)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by a kill
        if int(record.get("step", 0)) <= last_step:
            kept.append(line)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)


class MetricsLog:
    """JSONL file + optional wandb run; a no-op where ``enabled`` is False."""

    def __init__(self, out_dir: Path | None, *, enabled: bool, resume_step: int | None, wandb_config: dict[str, Any] | None):
        self.enabled = enabled
        self._fh = None
        self._wandb = None
        if not enabled:
            return
        if out_dir is not None:
            path = Path(out_dir) / METRICS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            if resume_step is not None:
                truncate_log(path, resume_step)
            elif path.exists():
                path.unlink()
            self._fh = path.open("a")
        if wandb_config is not None:
            import wandb  # only when asked for

            self._wandb = wandb.init(
                project=wandb_config.get("project"),
                name=wandb_config.get("name"),
                config=wandb_config.get("config"),
                dir=str(out_dir) if out_dir is not None else None,
                resume="allow" if resume_step is not None else None,
            )

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if k != "step"}, step=int(record["step"]))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


class Progress:
    """A tqdm bar over optimizer steps showing loss and tokens/s (or nothing when disabled)."""

    def __init__(self, total: int, initial: int, *, enabled: bool):
        self._bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True) if enabled else None

    def update(self, *, loss: float, tokens_per_s: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
