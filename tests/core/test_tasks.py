"""The task registry: every entry complete and consistent with its data set loader and its model."""

from __future__ import annotations

import pytest

from acom.core.models import MODELS, build_model
from acom.core.tasks import TASKS, get_task
from acom.corpora.featcache import LOADERS
from acom.errors import AcomError


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_has_its_loader_model_and_subsets(name) -> None:
    t = TASKS[name]
    assert name in LOADERS and name in MODELS and build_model(name).task == name
    assert t.test_subset in LOADERS[name].subsets and set(t.eval_sets) <= set(LOADERS[name].subsets)
    assert t.main_decoder in t.decoders and t.unit.startswith(t.metric.upper() if t.metric == "wer" else t.metric)


def test_the_metric_direction_decides_better_best_and_loss() -> None:
    asr, ac = TASKS["asr"], TASKS["ac"]
    assert asr.better(0.2, 0.3) and not ac.better(0.2, 0.3) and ac.better(0.9, 0.8)
    assert asr.best([0.3, 0.2]) == 0.2 and ac.best([0.8, 0.9]) == 0.9
    assert asr.loss(31.0, 30.0) == 1.0 and ac.loss(89.0, 90.0) == 1.0  # one point worse either way


def test_an_unknown_task_is_named() -> None:
    with pytest.raises(AcomError, match="unknown task 'kws'; allowed: asr, ac"):
        get_task("kws")
    with pytest.raises(AcomError, match="unknown task 'kws'"):
        build_model("kws")
