"""Search: the choices a target's table offers and the policies built from them."""

from .space import fisher_greedy_widths, nearest_widths, plan_policy

__all__ = ["fisher_greedy_widths", "nearest_widths", "plan_policy"]
