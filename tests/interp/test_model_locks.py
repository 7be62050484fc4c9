"""interp.space.exclusive: analyses serialised per model, not per process. Two models that
share nothing are analysed at once from two threads; a model, its parts, the wrappers
around it and a model sharing a parameter with it wait for each other; ``exclusive()``
without a model still excludes everything; nested entries do not deadlock; attention's
fast-path flag is counted across threads; and attribution, LRP and sensitivity run from two
threads at once give the serial numbers and leave no hooks."""

from __future__ import annotations

import random
import threading

import pytest
import torch
from torch import nn

import interp
from interp import space
from interp.objectives import OutputPart, ReconstructionError
from interp.space import as_found, exclusive
from tests.conftest import assert_untouched, hooks_left, snapshot

TIMEOUT = 20.0  # what a thread that should get in is given (never reached when all is well)
WAITS = 0.3  # how long a thread that should wait is watched not getting in


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


_STARTED: list[_Holder] = []


@pytest.fixture(autouse=True)
def _release_every_holder():
    """A failed test leaves no thread inside an analysis for the next one."""
    yield
    while _STARTED:
        holder = _STARTED.pop()
        holder.release.set()
        holder.thread.join(TIMEOUT)


class _Holder:
    """A thread inside ``exclusive(model)`` (``None``: ``exclusive()``) until released."""

    def __init__(self, model, wait_inside: bool = True):
        self.inside, self.release, self.errors = threading.Event(), threading.Event(), []
        _STARTED.append(self)
        self.thread = threading.Thread(target=self._run, args=(model,), daemon=True)
        self.thread.start()
        if wait_inside:
            assert self.inside.wait(TIMEOUT), "the holder never got in"

    def _run(self, model):
        try:
            with exclusive(model) if model is not None else exclusive():
                self.inside.set()
                assert self.release.wait(TIMEOUT), "never released"
        except BaseException as exc:  # noqa: BLE001  (reported by done())
            self.errors.append(exc)

    def done(self):
        self.release.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "a thread is stuck"
        if self.errors:
            raise self.errors[0]


def _finish(*holders: _Holder) -> None:
    """Release them all, then wait for each (those that conflict get in one after another)."""
    for h in holders:
        h.release.set()
    for h in holders:
        h.done()
        assert h.inside.is_set()


def _wrappers(a: nn.Sequential) -> dict[str, nn.Module]:
    tied = nn.Linear(4, 5)
    tied.weight = a[0].weight  # shares one parameter with ``a``, no module
    return {"itself": a, "OutputPart": OutputPart(a, 0), "ReconstructionError": ReconstructionError(a),
            "Sequential+Flatten": nn.Sequential(a, nn.Flatten()), "a part": a[0], "a parameterless part": a[1],
            "a tied weight": tied}


# ---------------------------------------------------------------------------- different models at once


def test_an_other_model_runs_while_one_is_held_and_the_same_model_in_any_guise_waits():
    a, b = _net(0), _net(1)
    holder = _Holder(a)
    try:
        other = _Holder(b)  # gets in while ``a`` is held (the holder fails after TIMEOUT otherwise)
        assert not holder.release.is_set()
        other.done()
        waiting = {name: _Holder(m, wait_inside=False) for name, m in _wrappers(a).items()}
        assert not waiting["itself"].inside.wait(WAITS)
        inside = [name for name, w in waiting.items() if w.inside.is_set()]
        assert not inside, f"{inside} got in while the model was held"
    finally:
        holder.done()
    _finish(*waiting.values())


def test_wrappers_of_different_models_do_not_wait_for_each_other():
    a, b = _net(0), _net(1)
    holder = _Holder(OutputPart(a, 0))
    try:
        for m in (nn.Sequential(b, nn.Flatten()), ReconstructionError(b), b[0], b[1]):
            _Holder(m).done()
    finally:
        holder.done()


def test_a_model_whose_parts_were_analysed_alone_first_waits_for_each_part_and_they_for_it():
    c = _net(2)
    first, last = _Holder(c[0]), _Holder(c[2])  # parts that share nothing: both inside at once
    whole = _Holder(c, wait_inside=False)
    try:
        assert not whole.inside.wait(WAITS)
        first.done()
        assert not whole.inside.wait(WAITS), "the whole model got in while one of its parts was analysed"
        last.done()
        assert whole.inside.wait(TIMEOUT)
        parts = [_Holder(m, wait_inside=False) for m in (c[0], c[2], nn.Sequential(c[2]))]
        assert not parts[0].inside.wait(WAITS)
        assert not any(p.inside.is_set() for p in parts), "a part got in while the whole model was held"
    finally:
        _finish(first, last)
        whole.done()
    _finish(*parts)


# ---------------------------------------------------------------------------- exclusive() without a model


def test_exclusive_without_a_model_waits_for_every_analysis_and_holds_new_ones_back():
    a, b = _net(0), _net(1)
    held_a, held_b = _Holder(a), _Holder(b)
    everything = _Holder(None, wait_inside=False)
    try:
        assert not everything.inside.wait(WAITS)
        held_a.done()
        assert not everything.inside.wait(WAITS), "exclusive() got in while a model was analysed"
        late = _Holder(_net(3), wait_inside=False)  # arrives while exclusive() waits: waits too
        held_b.done()
        assert everything.inside.wait(TIMEOUT)
        assert not late.inside.wait(WAITS), "an analysis got in while exclusive() held the process"
    finally:
        held_a.done()
        held_b.done()
        everything.done()
    late.done()
    assert late.inside.is_set()


def test_exclusive_inside_analyses_of_two_threads_is_refused_not_deadlocked():
    a, b = _net(0), _net(1)
    outcome = [None, None]
    start = threading.Barrier(2, timeout=TIMEOUT)

    def run(i, model):
        with exclusive(model):
            start.wait()
            if i == 1:  # until thread 0 waits inside exclusive() for this one to leave
                for _ in range(int(TIMEOUT / 0.01)):
                    if space._GATE._upgrading is not None:
                        break
                    threading.Event().wait(0.01)
            try:
                with exclusive():
                    pass
                outcome[i] = "in"
            except RuntimeError as exc:
                outcome[i] = str(exc)

    threads = [threading.Thread(target=run, args=(i, m), daemon=True) for i, m in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert outcome[0] == "in"
    assert "would deadlock" in outcome[1]


# ---------------------------------------------------------------------------- nested entries


def _in_a_thread(fn):
    errors = []

    def run():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(TIMEOUT)
    assert not t.is_alive(), "deadlock"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("inner", ["itself", "a part", "a wrapper", "a wrapper with new modules", "everything",
                                   "as_found"])
def test_nested_entries_in_one_thread_do_not_deadlock(inner):
    a = _net(0)
    m = {"itself": a, "a part": a[0], "a wrapper": OutputPart(a, 0),
         "a wrapper with new modules": nn.Sequential(a, nn.Flatten()), "everything": None, "as_found": a}[inner]

    def nested():
        with exclusive(a):
            if inner == "as_found":
                with as_found(a), exclusive(a[2]):
                    pass
            else:
                with exclusive(m) if m is not None else exclusive(), exclusive(m) if m is not None else exclusive():
                    with exclusive(a), exclusive(a[0]):
                        pass

    _in_a_thread(nested)
    _Holder(a).done()  # everything was released: another thread gets in
    _Holder(None).done()


def test_analyses_nested_in_exclusive_without_a_model_do_not_wait():
    a, b = _net(0), _net(1)

    def nested():
        with exclusive(), exclusive(a), exclusive(b), exclusive(), exclusive(a[0]):
            pass

    _in_a_thread(nested)
    _Holder(a).done()


def test_a_nested_entry_on_a_wrapper_joining_the_held_model_with_another_takes_both():
    a, b = _net(0), _net(1)
    for m in (a, b):
        with exclusive(m):
            pass  # each has a lock of its own, ``a``'s made first

    def nested():
        with exclusive(b), exclusive(nn.Sequential(a, b)):  # takes ``a``'s lock too, made before the one held
            pass

    _in_a_thread(nested)
    joined = _Holder(nn.Sequential(b, a))
    try:
        waiting = [_Holder(m, wait_inside=False) for m in (a, b)]
        assert not waiting[0].inside.wait(WAITS)
        assert not waiting[1].inside.is_set()
    finally:
        joined.done()
    _finish(*waiting)
    held = _Holder(a)  # ``a`` and ``b`` still share nothing: one runs while the other is held
    try:
        _Holder(b).done()
    finally:
        held.done()


# ---------------------------------------------------------------------------- attention's fast path


def test_the_attention_fast_path_is_off_while_any_analysis_runs_and_restored_after_the_last():
    a, b = _net(0), _net(1)
    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    try:
        for setting in (True, False):
            mha.set_fastpath_enabled(setting)
            first = _Holder(a)
            assert mha.get_fastpath_enabled() is False
            second = _Holder(b)
            first.done()
            assert mha.get_fastpath_enabled() is False, "turned back on while an analysis still runs"
            second.done()
            assert mha.get_fastpath_enabled() is setting
    finally:
        mha.set_fastpath_enabled(before)


# ---------------------------------------------------------------------------- random overlapping entries


def test_random_overlapping_entries_never_share_a_member_and_never_deadlock():
    nets = [_net(i) for i in range(3)]
    guises = [m for n in nets for m in (n, n[0], n[2], OutputPart(n, 0), nn.Sequential(n[0], n[1]))]
    guises += [nn.Sequential(nets[0][0], nets[1][2]), None]  # one across two models; exclusive()
    everything = {x for g in guises if g is not None for x in map(id, [*g.modules(), *g.parameters()])}
    inside: dict[int, int] = {}  # id(module or parameter) -> the thread analysing it
    guard, errors = threading.Lock(), []

    def members(m):
        return everything if m is None else set(map(id, [*m.modules(), *m.parameters()]))

    def worker(seed):
        rng, me = random.Random(seed), threading.get_ident()
        try:
            for _ in range(60):
                outer = rng.choice(guises)
                with exclusive(outer) if outer is not None else exclusive():
                    with guard:
                        taken = members(outer)
                        clash = [k for k in taken if inside.get(k, me) != me]
                        if clash:
                            errors.append(f"two threads inside {len(clash)} members at once")
                        inside.update(dict.fromkeys(taken, me))
                    inner = outer[0] if isinstance(outer, nn.Sequential) and rng.random() < 0.5 else outer
                    with exclusive(inner) if inner is not None else exclusive():
                        threading.Event().wait(rng.random() / 1000)
                    with guard:
                        for k in taken:
                            inside.pop(k, None)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors[:3]


# ---------------------------------------------------------------------------- end to end


class _Meet(nn.Module):
    """Passes its input on; when armed, first waits at ``barrier`` for the other thread's
    model, from inside its analysis: both analyses are then running at the same time."""

    def __init__(self, barrier: threading.Barrier):
        super().__init__()
        self.barrier, self.armed, self.met = barrier, False, []

    def forward(self, x):
        if self.armed:
            self.armed = False
            self.met.append(threading.get_ident() in space._GATE._shared)
            self.barrier.wait()
        return x


def _lrp(model, x):
    composite = interp.lrp.composites.get("epsilon_plus_flat").with_rules({_Meet: interp.lrp.rules.Pass()})
    return interp.lrp(model, x, 0, composite=composite).relevance


ANALYSES = {**{m: (lambda model, x, m=m: interp.attribute(model, x, 0, method=m))
               for m in ("saliency", "integrated_gradients", "deeplift", "guided_backprop")},
            "lrp": _lrp, "sensitivity": lambda model, x: interp.sensitivity(model, x, 0, kind="noise").score_change}


def test_analyses_from_two_threads_on_two_models_give_the_serial_numbers_and_leave_no_hooks():
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    models, xs = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(nn.Sequential(_Meet(barrier), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval())
        xs.append(torch.randn(4, 6))
    before = [snapshot(m) for m in models]
    serial = [{name: f(model, x) for name, f in ANALYSES.items()} for model, x in zip(models, xs)]
    together: list[dict] = [{}, {}]
    errors = []

    def run(i):
        try:
            for name, f in ANALYSES.items():
                models[i][0].armed = True
                together[i][name] = f(models[i], xs[i])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "stuck"
    assert not errors, errors
    for i, model in enumerate(models):
        assert model[0].met == [True] * len(ANALYSES)  # each met the other thread's, both inside their analyses
        for name in ANALYSES:
            assert torch.equal(together[i][name], serial[i][name]), (i, name)
        assert hooks_left(model) == 0
        assert not any(a in mod.__dict__ for mod in model.modules() for a in ("input", "output", "input_ref"))
        assert_untouched(model, before[i])
