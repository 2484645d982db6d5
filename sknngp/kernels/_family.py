"""Depth families: which shallower stacks a kernel computation passes through.

A stack's kernel is computed step by step, one step per nonlinearity, then the
*head* (the layers after the last nonlinearity: pooling and readout). Cutting
the stack after an earlier nonlinearity and keeping the same head gives a
shallower member of its family (for the named architectures: the same
architecture at a smaller ``depth``). When the head sees the same shapes and
covariance layout there, applying it to the state after that step *is* the
shallower member's kernel, so one pass yields every depth. Plain plan
analysis: no arrays.
"""

from __future__ import annotations

import functools

from ..architecture import Serial
from ._propagate import make_plan, steps


#: shallower members read off one pass, at most (the nearest ones): finding
#: each costs a plan of its own, so all of them would cost O(depth**2)
MAX_MEMBERS = 64


@functools.lru_cache(maxsize=256)
def members(plan):
    """``((step, shallower_plan), ...)``: the steps after which the head gives
    the kernel of a shallower stack, with that stack's plan (the nearest
    :data:`MAX_MEMBERS` of them)."""
    bounds = steps(plan)
    if len(bounds) < 2 or plan.layers[-1].nonlinear:
        return ()
    head = bounds[-1][0]
    first = plan.shapes[0]
    out = []
    # the last nonlinear step is the stack itself
    for step in range(max(0, len(bounds) - 2 - MAX_MEMBERS), len(bounds) - 2):
        end = bounds[step][1]
        layers = plan.layers[:end] + plan.layers[head:]
        try:
            shallow = make_plan(Serial(layers), first.spatial_in, first.channels_in)
        except (ValueError, TypeError):
            continue
        same = (
            shallow.full_inputs == plan.full_inputs[:end] + plan.full_inputs[head:]
            and shallow.shapes == plan.shapes[:end] + plan.shapes[head:]
        )
        if same:
            out.append((step, shallow))
    return tuple(out)


def prefix_key(plan, step):
    """What determines the state after ``step``: the layers up to it, with
    their shapes and covariance layout."""
    end = steps(plan)[step][1]
    return plan.layers[:end], plan.full_inputs[:end], plan.shapes[:end]


def state_is_diagonal(plan, step):
    """True if the state after ``step`` holds same-position covariances only
    (``(n1, n2, *S)``), the layout the bank stores."""
    end = steps(plan)[step][1]
    return not (plan.full_inputs[end - 1] and plan.shapes[end - 1].spatial_out)
