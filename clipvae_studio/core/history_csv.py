"""The loss history (Trainer.history: lists keyed step, epoch, total, terms) as a CSV file."""
from __future__ import annotations

import csv


def write_history_csv(path, history: dict, keys) -> None:
    rows = min((len(history.get(k, ())) for k in ("step", "epoch", *keys)), default=0)  # a step may be mid-append
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("step", "epoch") + tuple(keys))
        for i in range(rows):
            writer.writerow([int(history["step"][i]), f"{history['epoch'][i]:.6g}"]
                            + [f"{history[k][i]:.8g}" for k in keys])
