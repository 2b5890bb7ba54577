"""Search strategies by name: each is one module with a ``search(ctx)`` that proposes until the budget ends."""

from __future__ import annotations

from typing import Callable

from ..errors import InputError
from . import amc, hirelc, rl_pruner, simple, two_stage
from .context import SearchContext

STRATEGIES: dict[str, Callable[[SearchContext], None]] = {
    "hirelc": hirelc.search,
    "amc": amc.search,
    "rl-pruner": rl_pruner.search,
    "two-stage": two_stage.search,
    "fisher-greedy": simple.fisher_greedy,
    "uniform": simple.uniform,
    "random": simple.random_search,
}


def get_strategy(name: str) -> Callable[[SearchContext], None]:
    """Look a strategy up by name, with an error naming the flag for unknown names."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise InputError(f"--strategy: unknown strategy '{name}' (choose from {', '.join(STRATEGIES)})") from None
