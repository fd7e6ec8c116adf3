#!/usr/bin/env python3
"""Trains the per-regime models the engine runs through ONNX Runtime.

Reads feature frames written by `tickhost replay --features-out` (one row
per candle: ts_ms, symbol, regime, ..., close, v3_*), labels each candle by
its forward return over `--horizon` candles of the same session (1 = the
close is higher then), trains one classifier per regime, exports each to
ONNX (ai.onnx.ml TreeEnsembleClassifier, zipmap=False: outputs `label` and
`probabilities`, column 1 = P(up)), checks that ONNX Runtime reproduces the
trained model's probabilities, and prints validation metrics (the last
quarter of the sessions is held out).

    # frames made here from synthetic sessions (needs the built binary):
    python3 scripts/train_models.py --tickhost target/release/tickhost --days 40 --seed 100 --out examples/models
    # or from frames you already have:
    python3 scripts/train_models.py --frames a.csv b.csv --out models/

Writes <out>/<regime>.onnx and <out>/models.toml (the `[[ml.models]]`
entries to put in a config). The feature names are stored in each model's
metadata (`feature_names`); the engine refuses a model whose names differ
from its config.

Needs: numpy, scikit-learn, skl2onnx, lightgbm, onnxmltools, onnxruntime
(not installed by scripts/setup.sh, which only installs onnxruntime).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# The inputs of every model: order flow, momentum, volatility, position in
# the range and trend strength. All are in the v3 frame the engine computes.
FEATURES = [
    "v3_momentum_1",
    "v3_momentum_5",
    "v3_momentum_20",
    "v3_roc_10",
    "v3_momentum_accel_5",
    "v3_volatility_cc_20",
    "v3_volatility_gk_10",
    "v3_volume_ratio_20",
    "v3_buy_pressure",
    "v3_volume_imbalance",
    "v3_volume_imbalance_ma_5",
    "v3_volume_imbalance_zscore_20",
    "v3_trade_imbalance_ma_5",
    "v3_bb_position_20",
    "v3_atr_ratio_14",
    "v3_price_position_50",
    "v3_adx",
    "v3_di_diff",
    "v3_ema_alignment_score",
    "v3_trend_strength",
]

# Regime -> (estimator kind). Trees like the Python system's (XGBoost /
# LightGBM / random forest), kept small: a few tens of KiB each.
MODELS = {
    "trend_up": "gradient_boosting",
    "trend_down": "gradient_boosting",
    "range": "lightgbm",
}

MS_PER_DAY = 86_400_000
UTC_OFFSET_MS = -3 * 3_600_000  # B3 session days


def log(msg: str) -> None:
    print(msg, flush=True)


def make_frames(tickhost: Path, days: int, seed: int, date: str, workdir: Path) -> list[Path]:
    """Synthetic sessions (one file, `days` sessions) -> their frames."""
    data = workdir / "days.csv"
    run = lambda *a: subprocess.run([str(tickhost), *a], check=True, capture_output=True, text=True)  # noqa: E731
    run("gen", "--out", str(data), "--date", date, "--days", str(days), "--seed", str(seed))
    out = workdir / "frames.csv"
    run("replay", str(data), "--quiet", "--features-out", str(out))
    return [out]


def read_frames(paths: list[Path]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(regime per row, session day per row, close, features matrix, ts)."""
    regimes, days, closes, rows, ts = [], [], [], [], []
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            col = {name: i for i, name in enumerate(header)}
            missing = [n for n in FEATURES + ["ts_ms", "regime", "close"] if n not in col]
            if missing:
                sys.exit(f"train_models: {path} lacks columns {missing}; write it with `tickhost replay --features-out`")
            idx = [col[n] for n in FEATURES]
            for r in reader:
                t = int(r[col["ts_ms"]])
                ts.append(t)
                days.append((t + UTC_OFFSET_MS) // MS_PER_DAY)
                regimes.append(r[col["regime"]])
                closes.append(float(r[col["close"]]))
                rows.append([float(r[i]) for i in idx])
    return regimes, np.array(days), np.array(closes), np.array(rows, dtype=np.float64), np.array(ts)


def labels(days: np.ndarray, closes: np.ndarray, horizon: int) -> np.ndarray:
    """1 if the close `horizon` candles later (same session) is higher, 0 if
    lower, -1 when there is no such candle or the price did not move."""
    y = np.full(len(closes), -1, dtype=np.int64)
    for i in range(len(closes) - horizon):
        j = i + horizon
        if days[j] == days[i] and closes[j] != closes[i]:
            y[i] = int(closes[j] > closes[i])
    return y


def build(kind: str, seed: int):
    if kind == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(
            n_estimators=80, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=seed
        )
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            n_estimators=80,
            num_leaves=15,
            learning_rate=0.05,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=seed,
            deterministic=True,
            force_row_wise=True,
            n_jobs=1,
            verbose=-1,
        )
    raise ValueError(kind)


def to_onnx(model, kind: str, n: int):
    if kind == "lightgbm":
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

        initial = [("input", MlFloat([None, n]))]
        return onnxmltools.convert_lightgbm(model, initial_types=initial, zipmap=False, target_opset=15)
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    initial = [("input", FloatTensorType([None, n]))]

    return convert_sklearn(
        model,
        initial_types=initial,
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    out = {"n": int(len(y)), "base_rate_up": round(float(y.mean()), 4)}
    if len(y) and len(set(y)) == 2:
        out["accuracy"] = round(float(accuracy_score(y, p >= 0.5)), 4)
        out["auc"] = round(float(roc_auc_score(y, p)), 4)
        out["log_loss"] = round(float(log_loss(y, p, labels=[0, 1])), 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", nargs="*", type=Path, default=[], help="frames from `tickhost replay --features-out`")
    ap.add_argument("--tickhost", type=Path, help="make frames with this binary (gen + replay) instead")
    ap.add_argument("--days", type=int, default=40, help="synthetic sessions to make (with --tickhost)")
    ap.add_argument("--date", default="2024-02-01", help="first synthetic session (with --tickhost)")
    ap.add_argument("--seed", type=int, default=100, help="generator and training seed")
    ap.add_argument("--horizon", type=int, default=10, help="candles ahead for the label")
    ap.add_argument("--out", type=Path, required=True, help="directory for <regime>.onnx and models.toml")
    ap.add_argument("--path-prefix", default=None, help="model paths in models.toml (default: --out as given)")
    args = ap.parse_args()

    import lightgbm
    import onnx
    import onnxmltools
    import onnxruntime as ort
    import skl2onnx
    import sklearn

    versions = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "lightgbm": lightgbm.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnxmltools": onnxmltools.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
    }
    log("train_models: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

    with tempfile.TemporaryDirectory() as tmp:
        paths = list(args.frames)
        if args.tickhost:
            log(f"making {args.days} synthetic sessions from {args.date} (seed {args.seed}) with {args.tickhost}")
            paths += make_frames(args.tickhost, args.days, args.seed, args.date, Path(tmp))
        if not paths:
            sys.exit("train_models: give --frames or --tickhost")
        regimes, days, closes, x, _ = read_frames(paths)
    y = labels(days, closes, args.horizon)
    sessions = np.unique(days)
    cut = sessions[int(len(sessions) * 0.75)] if len(sessions) > 1 else sessions[0] + 1
    log(f"{len(y)} candles in {len(sessions)} sessions; labelled {(y >= 0).sum()} (horizon {args.horizon} candles); "
        f"validation: the last {int((sessions >= cut).sum())} sessions")

    args.out.mkdir(parents=True, exist_ok=True)
    prefix = args.path_prefix if args.path_prefix is not None else str(args.out)
    toml = [
        "# Made by scripts/train_models.py: paste into a config (or config/default.toml).",
        f"# horizon {args.horizon} candles, seed {args.seed}; column 1 of `probabilities` = P(close higher).",
    ]
    report = {"versions": versions, "horizon": args.horizon, "seed": args.seed, "models": {}}
    for regime, kind in MODELS.items():
        mask = np.array([r == regime for r in regimes]) & (y >= 0)
        train = mask & (days < cut)
        valid = mask & (days >= cut)
        if train.sum() < 50 or len(set(y[train])) < 2:
            log(f"  {regime}: only {train.sum()} labelled training candles; skipped")
            continue
        model = build(kind, args.seed)
        model.fit(x[train].astype(np.float32), y[train])
        onx = to_onnx(model, kind, len(FEATURES))
        # The converters name the graph with a random UUID: fix it so that
        # the same data and seed give the same bytes.
        onx.graph.name = f"tickhost_{regime}"
        # ...and list the opsets in a set's (hash-seeded) order: sort them.
        opsets = sorted((o.domain, o.version) for o in onx.opset_import)
        del onx.opset_import[:]
        for domain, version in opsets:
            onx.opset_import.add(domain=domain, version=version)
        meta = {
            "feature_names": ",".join(FEATURES),
            "regime": regime,
            "label": f"close higher after {args.horizon} candles",
            "trained_by": "scripts/train_models.py",
            "seed": str(args.seed),
        }
        for k, v in meta.items():
            p = onx.metadata_props.add()
            p.key, p.value = k, v
        path = args.out / f"{regime}.onnx"
        path.write_bytes(onx.SerializeToString())

        # ONNX Runtime must reproduce the trained model (float32 inputs).
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        probe = x[valid if valid.sum() else train].astype(np.float32)
        got = sess.run(["probabilities"], {"input": probe})[0][:, 1]
        want = model.predict_proba(probe)[:, 1]
        diff = float(np.max(np.abs(got - want))) if len(got) else 0.0
        m_train = metrics(y[train], model.predict_proba(x[train].astype(np.float32))[:, 1])
        m_valid = metrics(y[valid], sess.run(["probabilities"], {"input": x[valid].astype(np.float32)})[0][:, 1]) if valid.sum() else {}
        size = path.stat().st_size
        log(f"  {regime:<10} {kind:<17} {size / 1024:6.1f} KiB  train {m_train}")
        log(f"  {'':<10} {'':<17} {'':>10}  valid {m_valid}  max |onnxruntime - {kind}| = {diff:.2e}")
        if diff > 1e-4:
            sys.exit(f"train_models: ONNX Runtime disagrees with the trained {regime} model by {diff}")
        report["models"][regime] = {"kind": kind, "bytes": size, "train": m_train, "valid": m_valid, "onnx_max_abs_diff": diff}
        toml += [
            "",
            "[[ml.models]]",
            f'name = "{regime}"',
            f'path = "{prefix.rstrip("/")}/{regime}.onnx"',
            f'regimes = ["{regime}"]',
            'output = "probabilities"',
            "column = 1",
            "inputs = [" + ", ".join(f'"{n}"' for n in FEATURES) + "]",
        ]
    (args.out / "models.toml").write_text("\n".join(toml) + "\n")
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}/models.toml and metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
