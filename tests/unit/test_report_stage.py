"""The report stage refuses a bad baseline before it reads results or touches MLflow, and
shows every search (its sentences, figures and row of the selection table)."""

import base64
import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from sonarlab.stages import report
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nosuch", "report.baseline: got 'nosuch'; allowed: a variant (baseline, visible"),
        ("", "report.baseline: got ''; allowed: the name of a variant"),
        (3, "report.baseline: got 3; allowed: a string"),
    ],
)
def test_a_bad_baseline_stops_with_one_line_and_exit_2(workspace, caplog, value, message):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["report"]["baseline"] = value
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with caplog.at_level(logging.ERROR):
        assert report.main([]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message in line
    assert not (workspace / "mlflow.db").exists() and not (workspace / "reports").exists()


def test_missing_results_name_the_file(workspace, caplog):
    assert report.main([]) == 1
    assert "results/baseline/folds.csv" in caplog.text
    assert not (workspace / "mlflow.db").exists()


def test_the_champion_alias_is_removed_when_no_variant_may_be_served(tmp_path):
    """``runs.clear_champion`` on a real store: the alias goes, the versions stay."""
    from mlflow.tracking import MlflowClient

    from sonarlab.tracking import runs

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    client.create_registered_model("m")
    version = client.create_model_version("m", source=str(tmp_path / "model")).version
    client.set_registered_model_alias("m", "baseline", version)
    assert runs.set_champion(client, "m", "baseline") == version
    assert client.get_model_version_by_alias("m", "champion").version == version
    assert runs.clear_champion(client, "m") is True
    assert "champion" not in client.get_registered_model("m").aliases
    assert client.get_model_version_by_alias("m", "baseline").version == version
    assert runs.clear_champion(client, "m") is False  # nothing to remove


# --- searches: tiny synthetic outputs, in the real formats ------------------------------

PNG = b"\x89PNG\r\n\x1a\n"  # the page embeds or links the bytes; it never decodes them


def tutorial_search():
    """``searches.tutorial`` of the project's params (four axes, halving at 50, 300)."""
    from sonarlab.design.searches import load_search

    return load_search(yaml.safe_load((ROOT / "params.yaml").read_text()), "tutorial")


def search_trials(states, beats, axes) -> pd.DataFrame:
    """A search's ``trials.csv`` rows: trial ``i`` scores accuracy 0.80 + i/100 and Brier
    0.20 - i/100 (so the last complete trial that beats the reference is the rule's)."""
    from sonarlab.results.summary import SUMMARY_KEYS

    n = len(states)
    table = pd.DataFrame({"trial": range(n), "state": states})
    table["epochs"] = [300 if s == "complete" else 50 for s in states]
    for i, axis in enumerate(axes):
        table[axis] = [0.1 * (i + 1) + 0.01 * t for t in range(n)]
    table["model.max_norm"] = float("nan")  # MaxNorm none
    for key in SUMMARY_KEYS:
        table[key] = 0.5
    for metric, start, step in (("accuracy", 0.80, 0.01), ("brier", 0.20, -0.01)):
        table[f"{metric}_mean"] = [start + step * t for t in range(n)]
        table[f"{metric}_ci_low"] = table[f"{metric}_mean"] - 0.05
        table[f"{metric}_ci_high"] = table[f"{metric}_mean"] + 0.05
    table["n_folds"] = 3
    table["ece"] = 0.05
    table["brier_vs_reference"] = table["brier_mean"] - 0.25
    table["brier_vs_reference_ci_high"] = [-0.01 if b else 0.01 for b in beats]
    table["beats_reference"] = [int(b) for b in beats]
    return table


def write_search(where, states, beats) -> None:
    """``results/search/<name>/`` as ``search@<name>`` writes it (trials.csv,
    metrics.json by ``tables.search_metrics``, the figures), for trials ending in
    ``states``; the rule's choice is the last complete trial that ``beats``."""
    from sonarlab.core import files
    from sonarlab.results import tables

    axes = tutorial_search().axis_names
    trials = search_trials(states, beats, axes)
    eligible = [
        t for t, (s, b) in enumerate(zip(states, beats, strict=True)) if s == "complete" and b
    ]
    best = eligible[-1] if eligible else None
    corrected = best is not None and {
        "accuracy": {"mean": 0.81, "ci_low": 0.74, "ci_high": 0.88},
        "brier": {"mean": 0.17, "ci_low": 0.12, "ci_high": 0.22},
        "log_loss": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6},
    }  # fmt: skip
    reference = {"accuracy": 0.53, "roc_auc": 0.5, "log_loss": 0.69, "brier": 0.249}
    metrics = tables.search_metrics(
        trials, axes, best, reference, corrected or None, model_epochs=3060,
        full_model_epochs=3600,
    )  # fmt: skip
    where.root.mkdir(parents=True, exist_ok=True)
    tables.search_trials_format(axes).write(where.trials, trials)
    files.write_json(where.metrics, metrics)
    for key, png in zip(("history", "importance", "slices"), where.figures, strict=True):
        png.write_bytes(PNG + key.encode())


FATES = ["complete", "pruned", "complete", "pruned", "complete", "failed"]


def read_search(tmp_path, states=FATES, beats=(1, 0, 1, 0, 0, 0)):
    from sonarlab.core.paths import Paths

    paths = Paths(tmp_path)
    write_search(paths.search("tutorial"), states, beats)
    (search,) = report.search_conclusions(paths, [tutorial_search()])
    return search


def test_a_searchs_sentence_gives_its_fates_savings_and_choice_with_intervals(tmp_path):
    from sonarlab.report import comparison

    sentence = comparison.search_sentence(read_search(tmp_path))
    assert sentence.startswith(
        "Search tutorial (6 trials of hidden asked for by Optuna's tpe sampler over "
        "model.hidden_dropout, optimizer.learning_rate, optimizer.momentum, model.max_norm; "
        "successive halving over rungs of 50, 300 epochs, the best 1/3 at each rung going "
        "on to the next): 3 complete, 2 pruned, 1 failed."
    )
    assert "It trained 3,060 model-epochs" in sentence
    assert "15.00% fewer than the 3,600 of every trial at the full 300 epochs" in sentence
    assert "ranges from 80.00% [75.00%, 85.00%] (#0) to 84.00% [79.00%, 89.00%] (#4)" in sentence
    assert "2 of 3 complete trials beat the no-skill reference (Brier 0.249, accuracy 53.00%)" in (
        sentence
    )
    assert (
        "chooses trial #2 at model.hidden_dropout 0.12, optimizer.learning_rate 0.22, "
        "optimizer.momentum 0.32, model.max_norm none: held-out Brier 0.180 [0.130, 0.230], "
        "accuracy 82.00% [77.00%, 87.00%]; corrected for the choice (BBC-CV), accuracy "
        "81.00% [74.00%, 88.00%] and Brier 0.170 [0.120, 0.220]."
    ) in sentence


def test_a_search_with_no_trial_beating_the_reference_chooses_none(tmp_path):
    from sonarlab.report import comparison

    search = read_search(tmp_path, beats=(0,) * 6)
    assert search.metrics["best"] is None
    sentence = comparison.search_sentence(search)
    assert "0 of 3 complete trials beat the no-skill reference" in sentence
    assert sentence.endswith("No complete trial beats the no-skill reference, so none is chosen.")
    none = comparison.search_sentence(read_search(tmp_path / "b", states=["pruned"] * 6))
    assert none.endswith(": 0 complete, 6 pruned. It trained 3,060 model-epochs (one network "
                         "on one split for one epoch), 15.00% fewer than the 3,600 of every "
                         "trial at the full 300 epochs. No trial completed, so none is "
                         "chosen.")  # fmt: skip


def variant_results(seed: int = 0):
    """A variant's per-split table and out-of-fold predictions on 2 repeats x 5 folds of
    20 rows, consistent with each other (as ``cv@<variant>`` writes them)."""
    from sonarlab.results.predictions import split_scores

    rng = np.random.default_rng(seed)
    labels = np.array([1, 0] * 10)
    pred = pd.DataFrame(
        [{"repeat": r, "fold": f, "row": row, "label": labels[row]}
         for r in range(2) for f in range(5) for row in range(20) if (row + r) % 5 == f]
    )  # fmt: skip
    pred["p"] = np.clip(0.2 + 0.6 * pred["label"] + rng.normal(0, 0.1, len(pred)), 0.01, 0.99)
    pred["p_mc"] = float("nan")
    folds = split_scores(pred)
    held = pred.groupby(["repeat", "fold"])["row"].apply(lambda r: ",".join(map(str, r)))
    folds["test_rows"] = held.to_numpy()
    folds["train_accuracy"] = 1.0
    return folds, pred


def test_the_page_has_a_searches_section_and_a_row_per_search(tmp_path):
    """The page as ``report`` renders it, from synthetic variant results and two
    searches: one that chose a trial, one that chose none."""
    from sonarlab.core.params import load_cv_keys
    from sonarlab.core.paths import Paths
    from sonarlab.report import comparison, page

    chosen = read_search(tmp_path)
    nothing = dataclasses.replace(read_search(tmp_path / "b", beats=(0,) * 6), name="other")
    results = {"baseline": variant_results(0), "hidden": variant_results(1)}
    folds = {v: f for v, (f, _) in results.items()}
    predictions = {v: p for v, (_, p) in results.items()}
    rows = comparison.compare(folds, "baseline")
    cv = load_cv_keys({"cv": {"seed": 7, "mc_samples": 5}}, ("seed", "mc_samples"))
    content = report.conclusions(
        rows, "baseline", {}, folds, predictions, cv, [], [chosen, nothing]
    )
    table = comparison.selection_table(rows, content.assessment, [], content.searches)
    assert table.iloc[1].tolist() == [
        "search tutorial", "3 complete of 6", "2",
        "#2: model.hidden_dropout 0.12, optimizer.learning_rate 0.22, optimizer.momentum "
        "0.32, model.max_norm none", "82.00% [77.00%, 87.00%]", "81.00% [74.00%, 88.00%]",
        "0.180 [0.130, 0.230]", "0.170 [0.120, 0.220]",
    ]  # fmt: skip
    assert table.iloc[2].tolist() == ["search other", "3 complete of 6", "0", "none"] + ["—"] * 4
    markdown = page.markdown_page(content)
    section = markdown[markdown.index("## Searches\n") : markdown.index("## Figures\n")]
    assert comparison.search_sentence(chosen) in section
    assert comparison.search_sentence(nothing) in section
    for key in ("history", "importance", "slices"):
        assert f"(../results/search/tutorial/{key}.png)" in section
    (line,) = [x for x in markdown.splitlines() if x.startswith("| search tutorial ")]
    assert [c.strip() for c in line.split("|")[1:-1]] == table.iloc[1].tolist()
    pngs = {s.name: {k: Paths(tmp_path).search("tutorial").figure(k) for k in page.SEARCH_FIGURES}
            for s in (chosen, nothing)}  # fmt: skip
    figures = {name: tmp_path / "tutorial" for name in page.FIGURES}
    for path in figures.values():
        path.write_bytes(PNG)
    html = page.html_page(content, figures, {}, {}, pngs)
    section = html[html.index("<h2>Searches</h2>") : html.index("<h2>Figures</h2>")]
    assert "Search tutorial (6 trials of hidden" in section and "Search other (" in section
    embedded = "data:image/png;base64," + base64.b64encode(PNG + b"slices").decode("ascii")
    assert section.count(embedded) == 2 and "../results/search" not in section
    assert "<td>search tutorial</td>" in html


def fake_project(workspace) -> None:
    """Params of two variants, no grid and the tutorial search; each variant's results
    (folds, curves, predictions) in their real formats; no search outputs."""
    from sonarlab.core.paths import Paths
    from sonarlab.results import tables
    from sonarlab.results.metrics import CURVE_KEYS

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["variants"] = {v: params["variants"][v] for v in ("baseline", "hidden")}
    params["grids"] = {}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    curves = pd.DataFrame({"epoch": [1, 2], **{f"{k}_{s}": 0.5 for k in CURVE_KEYS
                                               for s in ("mean", "std")}})  # fmt: skip
    for seed, variant in enumerate(params["variants"]):
        where = Paths(workspace).variant(variant)
        where.root.mkdir(parents=True)
        folds, pred = variant_results(seed)
        tables.FOLDS.write(where.folds, folds)
        tables.PREDICTIONS.write(where.predictions, pred)
        tables.CURVES.write(where.curves, curves.set_index("epoch"))


@pytest.mark.parametrize("missing", ["trials.csv", "metrics.json", "slices.png"])
def test_missing_search_outputs_name_the_file(workspace, caplog, missing):
    from sonarlab.core.paths import Paths

    fake_project(workspace)
    where = Paths(workspace).search("tutorial")
    write_search(where, FATES, (1, 0, 1, 0, 0, 0))
    (where.root / missing).unlink()
    with caplog.at_level(logging.ERROR):
        assert report.main([]) == 1
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"results/search/tutorial/{missing}" in line and "dvc repro" in line
    assert not (workspace / "mlflow.db").exists() and not (workspace / "reports").exists()


def test_a_search_metrics_file_of_another_format_is_refused(tmp_path):
    from sonarlab.core import files
    from sonarlab.core.paths import Paths

    read_search(tmp_path)
    where = Paths(tmp_path).search("tutorial")
    metrics = files.read_json(where.metrics)
    del metrics["model_epochs"]  # a grid's metrics.json, say
    files.write_json(where.metrics, metrics)
    with pytest.raises(files.FormatError, match=r"metrics\.json: no key 'model_epochs'"):
        report.search_conclusions(Paths(tmp_path), [tutorial_search()])
