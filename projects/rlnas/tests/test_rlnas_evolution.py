import collections
import itertools
import json

import pytest

from projects.rlnas.rlnas.search import EvolutionSearcher

CHOICES = [3] * 6  # 729 candidates


def separable_score(arch):
    return sum((i + 1) * c for i, c in enumerate(arch)) + 0.01 * arch[0]


def cost(arch):
    return sum(arch)


def test_respects_constraint_and_never_evaluates_twice():
    calls = collections.Counter()

    def score(arch):
        calls[arch] += 1
        return separable_score(arch)

    searcher = EvolutionSearcher(CHOICES, score, lambda a: cost(a) <= 6, seed=1)
    top = searcher.run()
    assert calls and max(calls.values()) == 1
    assert all(cost(a) <= 6 for a in calls)
    assert len(calls) == len(searcher.scores) <= 50 * 20
    # the best allowed candidate puts its budget of 6 on the most valuable layers
    best = max((a for a in itertools.product(range(3), repeat=6) if cost(a) <= 6),
               key=separable_score)
    assert top[0] == best == (0, 0, 0, 0, 2, 2) or separable_score(top[0]) == separable_score(best)
    assert len(top) == 10 and all(cost(a) <= 6 for a in top)


def test_small_space_is_exhausted_without_repeats():
    calls = collections.Counter()

    def score(arch):
        calls[arch] += 1
        return -sum(arch)

    searcher = EvolutionSearcher([3, 3, 3], score, population_size=10, top_k=3, num_mutation=5,
                                 num_crossover=5, max_epochs=20, seed=0)
    searcher.run()
    assert max(calls.values()) == 1
    assert len(calls) == 27  # all of it, then the search stops early
    assert searcher.top_candidates(1)[0] == (0, 0, 0)
    assert searcher.epoch < 20


def test_resume_gives_the_same_search(tmp_path):
    full = EvolutionSearcher(CHOICES, separable_score, lambda a: cost(a) <= 7, seed=3,
                             max_epochs=6)
    full.run()

    first = EvolutionSearcher(CHOICES, separable_score, lambda a: cost(a) <= 7, seed=3,
                              max_epochs=6)
    for _ in range(2):
        first.step()
    path = tmp_path / 'state.json'
    path.write_text(json.dumps(first.state_dict()))  # must be JSON-serialisable

    calls = collections.Counter()

    def counted(arch):
        calls[arch] += 1
        return separable_score(arch)

    resumed = EvolutionSearcher(CHOICES, counted, lambda a: cost(a) <= 7, seed=999,
                                max_epochs=6)
    resumed.load_state_dict(json.loads(path.read_text()))
    resumed.run()
    assert list(resumed.scores) == list(full.scores)  # same candidates in the same order
    assert resumed.history == full.history
    assert not set(calls) & set(list(first.scores))  # nothing evaluated before is redone


def test_errors():
    with pytest.raises(RuntimeError, match='constraint'):
        EvolutionSearcher([3, 3], lambda a: 0.0, lambda a: False, max_tries=5).run()
    with pytest.raises(ValueError):
        EvolutionSearcher([3, 3], lambda a: 0.0, top_k=1)
    searcher = EvolutionSearcher([3, 3], lambda a: 0.0)
    with pytest.raises(ValueError, match='choices'):
        searcher.load_state_dict(EvolutionSearcher([2, 2], lambda a: 0.0).state_dict())


def test_finished_search_can_be_extended():
    calls = collections.Counter()

    def score(arch):
        calls[arch] += 1
        return separable_score(arch)

    short = EvolutionSearcher(CHOICES, score, seed=5, max_epochs=2)
    short.run()
    assert short.done and not short.population
    state = json.loads(json.dumps(short.state_dict()))
    longer = EvolutionSearcher(CHOICES, score, seed=5, max_epochs=4)
    longer.load_state_dict(state)
    longer.run()
    assert longer.epoch == 4 and len(longer.history) == 4
    assert len(longer.scores) == 200 and max(calls.values()) == 1
