"""Task registry: `task.type` in a config names one of these."""

from __future__ import annotations

from seqtune.errors import SeqtuneError

# name -> "module:Class"; imported lazily so that a task's dependencies load only when used.
TASKS = {
    "classification": "seqtune.tasks.classification:ClassificationTask",
    "multilabel": "seqtune.tasks.classification:MultiLabelTask",
    "regression": "seqtune.tasks.regression:RegressionTask",
    "tagging": "seqtune.tasks.tagging:TaggingTask",
    "residues": "seqtune.tasks.residues:ResidueTask",
    "qa": "seqtune.tasks.qa:QuestionAnsweringTask",
    "mlm": "seqtune.tasks.mlm:MaskedLMTask",
}


def task_class(name: str):
    if name not in TASKS:
        raise SeqtuneError(f"unknown task.type {name!r}; valid task types are: {', '.join(TASKS)}.")
    module_name, class_name = TASKS[name].split(":")
    import importlib

    return getattr(importlib.import_module(module_name), class_name)
