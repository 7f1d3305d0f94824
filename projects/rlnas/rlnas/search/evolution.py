"""Evolution search over per-layer choices (SPOS-style), independent of how candidates are scored.

Each generation evaluates its population, keeps the top-k of everything seen so far, and breeds
the next population from them: ``num_mutation`` mutants (each layer re-drawn with probability
``mutate_prob``) and ``num_crossover`` children (each layer from one of two parents). Candidates
that break the constraint or were already evaluated are never (re-)evaluated; when breeding
cannot find enough new ones (small or tightly constrained spaces), random new candidates fill up.
The whole state is JSON (RNG included), so a search resumes exactly where it stopped.
"""
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

Arch = Tuple[int, ...]


class EvolutionSearcher:
    """Args:
        num_choices: number of choices of every layer.
        score_fn: arch -> score (higher is better); called once per distinct candidate.
        constraint_fn: arch -> bool (True = allowed); None allows all.
        population_size, top_k, num_mutation, num_crossover, mutate_prob, max_epochs: the
            evolution's settings (RLNAS: 50, 10, 25, 25, 0.1, 20).
        seed: seed of the search's own RNG.
        max_tries: attempts per wanted candidate before giving up on breeding/sampling one.
    """

    def __init__(self, num_choices: Sequence[int], score_fn: Callable[[Arch], float],
                 constraint_fn: Optional[Callable[[Arch], bool]] = None,
                 population_size: int = 50, top_k: int = 10, num_mutation: int = 25,
                 num_crossover: int = 25, mutate_prob: float = 0.1, max_epochs: int = 20,
                 seed: int = 0, max_tries: int = 200):
        if top_k < 2:
            raise ValueError('top_k must be >= 2 (crossover needs two parents)')
        if not 0 <= mutate_prob <= 1:
            raise ValueError(f'mutate_prob must be in [0, 1], got {mutate_prob}')
        self.num_choices = list(num_choices)
        self.score_fn = score_fn
        self.constraint_fn = constraint_fn or (lambda arch: True)
        self.population_size, self.top_k = population_size, top_k
        self.num_mutation, self.num_crossover = num_mutation, num_crossover
        self.mutate_prob, self.max_epochs = mutate_prob, max_epochs
        self.max_tries = max_tries
        self.rng = random.Random(seed)
        self.scores: Dict[Arch, float] = {}  # every evaluated candidate, in order
        self.rejected: set = set()  # candidates known to break the constraint
        self.epoch = 0  # generations finished
        self.population: List[Arch] = []  # the next generation to evaluate
        self.history: List[dict] = []
        self.exhausted = False  # no new allowed candidate could be found

    # --- candidates -----------------------------------------------------------------------
    def _allowed_new(self, arch: Arch) -> bool:
        if arch in self.scores or arch in self.rejected:
            return False
        if not self.constraint_fn(arch):
            self.rejected.add(arch)
            return False
        return True

    def _random(self) -> Arch:
        return tuple(self.rng.randrange(n) for n in self.num_choices)

    def _mutate(self, parent: Arch) -> Arch:
        return tuple(
            self.rng.randrange(n) if self.rng.random() < self.mutate_prob else c
            for c, n in zip(parent, self.num_choices))

    def _crossover(self, a: Arch, b: Arch) -> Arch:
        return tuple(x if self.rng.random() < 0.5 else y for x, y in zip(a, b))

    def _collect(self, make, count: int, taken: set) -> List[Arch]:
        out = []
        tries = 0
        while len(out) < count and tries < count * self.max_tries:
            tries += 1
            arch = make()
            if arch not in taken and self._allowed_new(arch):
                out.append(arch)
                taken.add(arch)
        return out

    def _next_population(self) -> List[Arch]:
        parents = self.top_candidates(self.top_k)
        taken: set = set()
        if len(parents) >= 2:
            pop = self._collect(lambda: self._mutate(self.rng.choice(parents)),
                                self.num_mutation, taken)
            pop += self._collect(lambda: self._crossover(*self.rng.sample(parents, 2)),
                                 self.num_crossover, taken)
        else:
            pop = []
        wanted = self.num_mutation + self.num_crossover if parents else self.population_size
        return pop + self._collect(self._random, wanted - len(pop), taken)

    # --- the search -----------------------------------------------------------------------
    def top_candidates(self, k: int) -> List[Arch]:
        """Best k evaluated candidates (ties: the one evaluated first)."""
        order = sorted(self.scores.items(), key=lambda kv: -kv[1])
        return [arch for arch, _ in order[:k]]

    def step(self) -> Optional[dict]:
        """Evaluate the current population, then breed the next one (None: nothing left)."""
        if not self.population:  # first generation, or a finished search given more epochs
            if self.epoch == 0:
                self.population = self._collect(self._random, self.population_size, set())
                if not self.population:
                    raise RuntimeError('no candidate satisfies the constraint (tried '
                                       f'{self.population_size * self.max_tries} random ones)')
            else:
                self.population = self._next_population()
                if not self.population:
                    self.exhausted = True
                    return None
        for arch in self.population:
            if arch in self.scores:  # never evaluate twice (guards resumed states too)
                continue
            self.scores[arch] = float(self.score_fn(arch))
        best = self.top_candidates(1)[0]
        record = dict(epoch=self.epoch, evaluated=len(self.population),
                      total_evaluated=len(self.scores), best=list(best),
                      best_score=self.scores[best])
        self.history.append(record)
        self.epoch += 1
        self.population = self._next_population() if self.epoch < self.max_epochs else []
        self.exhausted = self.epoch < self.max_epochs and not self.population
        return record

    @property
    def done(self) -> bool:
        return self.epoch >= self.max_epochs or self.exhausted

    def run(self, on_epoch: Optional[Callable[['EvolutionSearcher', dict], None]] = None):
        while not self.done:
            record = self.step()
            if record is not None and on_epoch is not None:
                on_epoch(self, record)
        return self.top_candidates(self.top_k)

    # --- resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return dict(
            num_choices=self.num_choices, epoch=self.epoch,
            scores=[[list(a), s] for a, s in self.scores.items()],
            rejected=[list(a) for a in sorted(self.rejected)],
            population=[list(a) for a in self.population], history=self.history,
            exhausted=self.exhausted,
            rng=[version, list(internal), gauss],
            settings=dict(population_size=self.population_size, top_k=self.top_k,
                          num_mutation=self.num_mutation, num_crossover=self.num_crossover,
                          mutate_prob=self.mutate_prob, max_epochs=self.max_epochs))

    def load_state_dict(self, state: dict) -> None:
        if list(state['num_choices']) != self.num_choices:
            raise ValueError(f'state is for a space with choices {state["num_choices"]}, this '
                             f'search has {self.num_choices}')
        self.epoch = state['epoch']
        self.scores = {tuple(a): s for a, s in state['scores']}
        self.rejected = {tuple(a) for a in state['rejected']}
        self.population = [tuple(a) for a in state['population']]
        self.history = list(state['history'])
        self.exhausted = bool(state.get('exhausted', False))
        version, internal, gauss = state['rng']
        self.rng.setstate((version, tuple(internal), gauss))
