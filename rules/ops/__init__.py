"""The four temporal operators, one module each: a pure state (a step function over a few
fields) and its logic, the glue between that state and the engine (:mod:`rules.ops.base`).

:data:`OPERATORS` is the one place an operator kind is looked up: the rule's config type
picks the logic that the engine uses from then on, without asking the kind again.
"""

from rules.ops.base import Operator
from rules.ops.count import CountOp
from rules.ops.holds import HoldsOp
from rules.ops.persist import PersistOp
from rules.ops.silent import SilentOp
from rules.pack import Count, Holds, Persist, Rule, Silent

OPERATORS: dict[type, type[Operator]] = {Persist: PersistOp, Count: CountOp, Holds: HoldsOp, Silent: SilentOp}


def build(rule: Rule) -> Operator:
    """The logic of a rule's operator."""
    return OPERATORS[type(rule.operator)](rule)
