"""Computing a bank's missing block, and every depth of a family from one pass.

:func:`compute_missing` is called by :func:`sknngp._bank.kernels` for the rows
and columns with missing entries. Besides the requested kernels it

- resumes from the deepest banked state of a prefix of the stack that covers
  the block (so depth ``d + 1`` after depth ``d`` costs one layer);
- reads off the kernels of the shallower members of the stack's family (the
  head applied after each earlier nonlinearity), when they are small
  (:data:`SMALL_BYTES`) or a sweep over depth is evident (another member of
  the family was requested before);
- keeps the state before the head when a sweep is evident, or, for stacks
  with spatial states (convolutions: each layer costs ``P = H * W`` times
  more per entry than a dense one), whenever the state takes at most a
  quarter of the bank's budget. Flat stacks' states are as large as the
  kernel itself, so they are kept only for evident sweeps.

What it computed is only stored by :meth:`Computed.commit`, after success.
"""

from __future__ import annotations

import numpy as np

from .kernels import _engine, _family

#: readouts up to this many bytes in all are kept without evidence of a sweep
SMALL_BYTES = 64 * 2**20


class Computed:
    """Kernels of the missing block, plus what the family pass produced."""

    def __init__(self, bank, plan, dkey, kernels, readouts, state, state_step, resumed):
        self.bank, self.plan, self.dkey = bank, plan, dkey
        self.kernels, self.readouts = kernels, readouts
        self.state, self.state_step, self.resumed = state, state_step, resumed

    def commit(self, ids1, ids2, make_room):
        """Store everything in the bank (kernels first), as far as memory allows."""
        items = [(("kernel", self.plan, self.dkey), self.kernels)]
        items += [(("kernel", shallow, self.dkey), ro) for shallow, ro in self.readouts]
        for key, arrays in items:
            need = sum(a.size * 9 for a in arrays.values())
            if not make_room(need, key):
                return
            for kind, arr in arrays.items():
                self.bank.store(key, kind).scatter(ids1, ids2, arr, len(self.bank.slots))
        if self.state is None:
            return
        key = ("state", _family.prefix_key(self.plan, self.state_step), self.dkey)
        need = self.state.nbytes
        # the same block's shallower (or equal: a resumed-and-recaptured) states
        # of this chain are superseded
        for step in range(self.state_step + 1):
            older = self.bank.stores.get(
                ("state", _family.prefix_key(self.plan, step), self.dkey))
            if older is not None:
                older["blocks"].discard(ids1, ids2)
        if make_room(need, key):
            self.bank.store(key, "blocks").add(ids1, ids2, self.state)


def _resume_point(bank, plan, dkey, kinds, ids1, ids2):
    """The deepest banked state ``(step, host state)`` covering the block."""
    if np.any(ids1 < 0) or np.any(ids2 < 0):
        return None
    for step in range(len(_engine.steps(plan)) - 2, -1, -1):
        store = bank.stores.get(("state", _family.prefix_key(plan, step), dkey))
        if store is None:
            continue
        state = store["blocks"].find(ids1, ids2)
        if state is None:
            continue
        has_ntk = state.has_ntk if hasattr(state, "has_ntk") else state[1] is not None
        if has_ntk or "ntk" not in kinds:
            return step, state
    return None


def _sweep_evident(bank, plan, dkey):
    """Was another member of this plan's family requested (shallower or deeper)?"""
    for _, shallow in _family.members(plan):
        if (shallow, dkey) in bank.requested:
            return True
    return any(
        other != plan and d == dkey
        and any(shallow == plan for _, shallow in _family.members(other))
        for other, d in bank.requested
    )


def compute_missing(bank, plan, dkey, kinds, x1, x2, ids1, ids2, *, budget, batch_size,
                    device):
    """Compute ``{kind: K(x1, x2)}`` (``x2=None``: symmetric) for bank slots
    ``ids1 x ids2`` (-1: new rows), with the family extras described above;
    ``budget`` is the bank's memory budget in bytes."""
    symmetric = x2 is None
    n1, n2 = len(x1), len(x1) if symmetric else len(x2)
    start = _resume_point(bank, plan, dkey, kinds, ids1, ids1 if symmetric else ids2)
    first = -1 if start is None else start[0]
    evident = _sweep_evident(bank, plan, dkey)
    members = [(s, shallow) for s, shallow in _family.members(plan) if s >= first]
    kernel_bytes = n1 * n2 * 8 * len(kinds)
    if members and not evident and kernel_bytes * len(members) > SMALL_BYTES:
        members = []
    members = [(s, shallow) for s, shallow in members
               if not _fully_known(bank, shallow, dkey, kinds, ids1, ids2, symmetric)]
    capture = None
    last = len(_engine.steps(plan)) - 2
    if last >= 0 and _family.state_is_diagonal(plan, last):
        entries = _engine._entries_per_pair(plan)
        state_bytes = n1 * n2 * 8 * entries * (2 if "ntk" in kinds else 1)
        if evident or (entries > 1 and 4 * state_bytes <= budget):
            capture = last
    out, ro, state = _engine.compute(
        plan, x1, x2, kinds, dkey, batch_size, device, start=start,
        readouts=tuple(s for s, _ in members), capture=capture,
    )
    readouts = [(shallow, ro[s]) for s, shallow in members]
    return Computed(bank, plan, dkey, out, readouts, state, capture, start is not None)


def _fully_known(bank, plan, dkey, kinds, ids1, ids2, symmetric):
    if np.any(ids1 < 0) or (not symmetric and np.any(ids2 < 0)):
        return False
    return bank.known(("kernel", plan, dkey), kinds, ids1,
                      ids1 if symmetric else ids2).all()
