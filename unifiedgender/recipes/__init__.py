"""Suggested training settings per modality (`ugn train --recipe NAME`): YAML files of TrainConfig fields.

Each recipe is what validation chose in the experiments of docs/results.md; its file says which runs.
Layering: TrainConfig defaults < recipe < --config file < flags.
"""

from __future__ import annotations

from pathlib import Path

RECIPE_DIR = Path(__file__).resolve().parent


def recipe_names() -> list[str]:
    """Names of the bundled recipes (file stems), sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The YAML file of recipe `name`; UserError naming the valid ones otherwise."""
    from unifiedgender.errors import UserError

    path = RECIPE_DIR / f"{name}.yaml"
    if name not in recipe_names():
        raise UserError(f"unknown recipe '{name}'; use one of {', '.join(recipe_names())}")
    return path


def suggested_recipe(modalities: set[str]) -> str | None:
    """The recipe for a training set of these modalities (hands and faces together: unified), else None."""
    if modalities == {"hand", "face"}:
        return "unified"
    if len(modalities) == 1:
        (only,) = modalities
        return only if only in recipe_names() else None
    return None
