"""How well each latent map shows the model: PCA, the label plane and the neighbourhood map.

Trains a studio model for --time-budget seconds (wall clock) on the bundled subset and on a second
dataset (the bundled digits transposed, the split reversed per class), then, for every projection,
on the test images' latent means (--holdout of them kept out of the fit):
- neighbourhood hit and trustworthiness (k = 7, 10) of the map of the fitted points;
- each label's share of the map near the data (cells within NEAR_SPACINGS of a point, lifted,
  decoded, labelled by CLIP) and that share relative to the label's share of the points;
- held-out click-to-class agreement: a held-out latent placed out of sample (project), lifted back
  (lift): does CLIP give the lifted latent the same label as the point's own latent?
- lift time per point;
and for the neighbourhood map: refit time at --points points while training runs in another thread
(p50/p95; the fits run in the studio's worker process, at its lowered priority), median movement between consecutive live updates and after a refit with unchanged
latents (share of the map's radius: the 95th percentile of the distance from the centre).
Prints one JSON object.

    python benchmarks/map_quality.py [--time-budget 60] [--datasets bundled second] [--refits 8]
"""
from __future__ import annotations

import argparse
import threading
import time

import _common  # noqa: F401
import numpy as np
import torch
from _common import emit, machine

from clipvae_studio.core import Trainer, load_dataset, preset
from clipvae_studio.core.data import ImageDataset
from clipvae_studio.core.decision_map import reencoded_scores
from clipvae_studio.core.map_worker import fit_map, new_pool
from clipvae_studio.core.neighbourhood_map import NeighbourhoodMap, geometry
from clipvae_studio.core.projection import LabelPlaneProjection, PCAProjection

KS = (7, 10)
GRID = 96  # cells across the map for the label shares
NEAR_SPACINGS = 2.0  # a cell is "near the data" within this many median nearest-neighbour gaps of a point


def second_dataset(bundled: ImageDataset) -> ImageDataset:
    """The bundled digits transposed, with the split reversed per class (first 100 test, last 400 train)."""
    images = torch.cat([bundled.train_images, bundled.test_images]).transpose(2, 3).contiguous()
    labels = torch.cat([bundled.train_labels, bundled.test_labels])
    train, test = [], []
    for k in range(bundled.num_labels):
        rows = torch.nonzero(labels == k).flatten()
        n_test = len(rows) // 5
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    train, test = torch.cat(train), torch.cat(test)
    return ImageDataset("transposed", images[train], labels[train], images[test], labels[test],
                        list(bundled.label_names))


def clip_labels(model, z: np.ndarray) -> np.ndarray:
    return reencoded_scores(model, np.asarray(z, np.float32)).argmax(1)


def neighbourhood_hit(uv: np.ndarray, labels: np.ndarray, k: int) -> float:
    from scipy.spatial import cKDTree

    _, index = cKDTree(uv).query(uv, k=k + 1)
    return float((labels[index[:, 1:]] == labels[:, None]).mean())


def label_shares(model, projection, uv: np.ndarray, labels: np.ndarray, num_labels: int) -> dict:
    from scipy.spatial import cKDTree

    tree = cKDTree(uv)
    gaps = tree.query(uv, k=2)[0][:, 1]
    spacing = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else 1.0
    lo, hi = uv.min(0), uv.max(0)
    side = max((hi - lo).max(), 1e-9) / GRID
    us = np.arange(lo[0], hi[0] + side, side)
    vs = np.arange(lo[1], hi[1] + side, side)
    cells = np.stack(np.meshgrid(us, vs), -1).reshape(-1, 2)
    near = cells[tree.query(cells, k=1)[0] <= NEAR_SPACINGS * spacing]
    top = clip_labels(model, projection.lift(near))
    share = np.bincount(top, minlength=num_labels) / max(len(top), 1)
    of_points = np.bincount(labels, minlength=num_labels) / len(labels)
    relative = share / np.maximum(of_points, 1e-12)
    return {"cells_near_data": int(len(near)), "share": [round(float(s), 4) for s in share],
            "min_share": round(float(share.min()), 4), "min_share_relative_to_points": round(float(relative.min()), 3),
            "labels_with_3pct": int((share >= 0.03).sum())}


def evaluate(name: str, projection, model, z_fit, labels_fit, z_held, num_labels: int) -> dict:
    from sklearn.manifold import trustworthiness

    start = time.perf_counter()
    if name == "neighbourhood":
        projection.update(z_fit)
    elif name == "pca":
        projection.update(z_fit)
    fit_s = time.perf_counter() - start
    uv = projection.uv if name == "neighbourhood" else projection.project(z_fit)
    out = {"fit_s": round(fit_s, 3)}
    for k in KS:
        out[f"neighbourhood_hit_k{k}"] = round(neighbourhood_hit(uv, labels_fit, k), 4)
        out[f"trustworthiness_k{k}"] = round(float(trustworthiness(z_fit, uv, n_neighbors=k)), 4)
    if getattr(projection, "metric", "euclidean") != "euclidean":  # also under the metric the map keeps
        out["metric"] = projection.metric
        out[f"trustworthiness_k10_{projection.metric}"] = round(
            float(trustworthiness(z_fit, uv, n_neighbors=10, metric=projection.metric)), 4)
    out["labels"] = label_shares(model, projection, uv, labels_fit, num_labels)
    own = clip_labels(model, z_held)
    lifted = clip_labels(model, projection.lift(projection.project(z_held)))
    out["heldout_click_agreement"] = round(float((own == lifted).mean()), 4)
    lo, hi = uv.min(0), uv.max(0)
    probe = lo + np.random.default_rng(0).random((5000, 2)) * (hi - lo)
    start = time.perf_counter()
    projection.lift(probe)
    out["lift_us_per_point"] = round((time.perf_counter() - start) / len(probe) * 1e6, 2)
    return out


def ceilings(model, z_fit, labels_fit, z_held) -> dict:
    """What the latent itself allows: its own neighbourhood hit (k=10, no map can separate what the
    model does not), and how often CLIP labels a held-out latent like its nearest fitted latent
    (a click that lands exactly on the nearest data point agrees this often)."""
    from scipy.spatial import cKDTree

    nearest = cKDTree(z_fit).query(z_held, k=1)[1]
    agree = (clip_labels(model, z_held) == clip_labels(model, z_fit[nearest])).mean()
    return {"latent_neighbourhood_hit_k10": round(neighbourhood_hit(z_fit, labels_fit, 10), 4),
            # CLIP compares latents by angle: the same under the cosine metric (unit vectors)
            "latent_neighbourhood_hit_k10_cosine": round(neighbourhood_hit(geometry(z_fit, "cosine"), labels_fit, 10), 4),
            "heldout_nearest_latent_agreement": round(float(agree), 4)}


def radius(uv: np.ndarray) -> float:
    return float(np.percentile(np.linalg.norm(uv - uv.mean(0), axis=1), 95))


def live_refits(trainer: Trainer, points: int, refits: int) -> dict:
    """Refit time and movement at `points` test+train images while training runs in a thread."""
    images = torch.cat([trainer.dataset.test_images, trainer.dataset.train_images])[:points]
    from clipvae_studio.core.metrics import to_float

    def latents():
        with trainer.lock:
            was = trainer.model.training
            trainer.model.eval()
            with torch.no_grad():
                mu = trainer.model.encode_image(to_float(images.to(trainer.device)))[0]
            trainer.model.train(was)
        return mu.cpu().numpy().astype(np.float64)

    # The fits go through the studio's own worker process (core/map_worker.py, lowered priority),
    # as the GUI's refits do; the time of a fit is measured inside the worker.
    pool, _ = new_pool()
    try:
        pool.submit(int).result()  # the worker's start (spawn, imports) is not a fit
        _, nmap, cold_s, _ = pool.submit(fit_map, 0, None, None, latents()).result()
        _, still, _, _ = pool.submit(fit_map, 0, nmap.z, nmap.uv, nmap.z).result()
        still_move = float(np.median(np.linalg.norm(still.uv - nmap.uv, axis=1))) / radius(nmap.uv)

        stop = threading.Event()

        def train():
            while not stop.is_set() and trainer.step_count < trainer.total_steps:
                trainer.step()

        thread = threading.Thread(target=train, daemon=True)
        steps0 = trainer.step_count
        thread.start()
        times, moves = [], []
        try:
            for _ in range(refits):
                time.sleep(0.5)  # training moves the latents a little, as between two live snapshots
                _, new, seconds, _ = pool.submit(fit_map, 0, nmap.z, nmap.uv, latents()).result()
                times.append(seconds)
                moves.append(float(np.median(np.linalg.norm(new.uv - nmap.uv, axis=1))) / radius(nmap.uv))
                nmap = new
        finally:
            stop.set()
            thread.join()
    finally:
        pool.shutdown()
    return {"points": int(len(images)), "cold_fit_s": round(cold_s, 3),
            "refit_s_p50": round(float(np.percentile(times, 50)), 3),
            "refit_s_p95": round(float(np.percentile(times, 95)), 3),
            "training_steps_during_refits": trainer.step_count - steps0,
            "movement_median_share_of_radius_live": round(float(np.median(moves)), 4),
            "movement_median_share_of_radius_unchanged_latents": round(still_move, 4)}


def run_dataset(dataset: ImageDataset, seconds: float, holdout: int, points: int, refits: int,
                steps: int | None = None) -> dict:
    config = preset("studio").with_values(seed=0, device="cpu", eval_every_steps=10**9, snapshot_every_s=1e9)
    trainer = Trainer(config, dataset, eval_size=None)
    # --steps trains a fixed number of steps instead: the map's quality figures then do not depend on
    # how busy the machine is (the cosine schedule still follows the planned steps)
    if steps:
        trainer.config = config.with_values(epochs=max(1, -(-steps // trainer.steps_per_epoch)))
    summary = trainer.run(max_steps=steps) if steps else trainer.run(time_budget=seconds)
    model = trainer.model.eval()
    snapshot = trainer.latent_snapshot()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(snapshot.mu))
    held, fit = order[:holdout], order[holdout:]
    z_fit, labels_fit = snapshot.mu[fit].astype(np.float64), snapshot.labels[fit]
    z_held = snapshot.mu[held].astype(np.float64)
    projections = {"pca": PCAProjection(), "neighbourhood": NeighbourhoodMap()}
    if dataset.num_labels >= 3:
        projections["label-plane"] = LabelPlaneProjection(snapshot.label_mu)
    out = {"dataset": dataset.name, "steps": summary["steps"], "train_seconds": summary["seconds"],
           "fitted_points": int(len(fit)), "heldout_points": int(len(held)), "projections": {},
           "ceilings": ceilings(model, z_fit, labels_fit, z_held)}
    for name, projection in projections.items():
        out["projections"][name] = evaluate(name, projection, model, z_fit, labels_fit, z_held, dataset.num_labels)
    out["live"] = live_refits(trainer, points, refits)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", type=float, default=60.0, help="training seconds per dataset")
    parser.add_argument("--datasets", nargs="+", default=["bundled", "second"], choices=["bundled", "second"])
    parser.add_argument("--holdout", type=int, default=200)
    parser.add_argument("--points", type=int, default=2000, help="points in the live refit")
    parser.add_argument("--refits", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None,
                        help="train this many steps instead of --time-budget seconds (quality figures independent of load)")
    args = parser.parse_args()
    torch.manual_seed(0)
    bundled = load_dataset("mnist5k")
    datasets = {"bundled": bundled, "second": second_dataset(bundled)}
    result = {"benchmark": "map_quality", "machine": machine(), "time_budget_s": None if args.steps else args.time_budget,
              "steps": args.steps, "runs": []}
    for name in args.datasets:
        result["runs"].append(run_dataset(datasets[name], args.time_budget, args.holdout, args.points, args.refits,
                                          args.steps))
    emit(result)


if __name__ == "__main__":
    main()
