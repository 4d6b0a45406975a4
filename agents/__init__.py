"""Decision makers: the interface, the optimizers (EPSL-BCD, EdgeSplit-alt, oracle), references."""

from .base import DecisionMaker
from .registry import available_decision_makers, make_decision_maker, register

__all__ = ["DecisionMaker", "available_decision_makers", "make_decision_maker", "register"]
