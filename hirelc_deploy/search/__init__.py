"""Search: find, for a latency budget on a target, the per-block width and precision policy that loses least."""

from .space import SearchSpace, nearest_widths, plan_policy

__all__ = ["SearchSpace", "nearest_widths", "plan_policy"]
