"""The learner's thread tuner: it keeps the thread count that makes updates fastest on the machine as it is now."""

from forethought.threads import ThreadTuner, candidate_counts


def run(tuner, seconds_with, updates):
    """Make ``updates`` updates whose duration depends on the thread count they run with; the counts used."""
    used = []
    for _ in range(updates):
        n = tuner.threads
        used.append(n)
        tuner.record(seconds_with(n))
    return used


def test_candidate_counts_double_up_to_the_cores():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(6) == [1, 2, 4, 6]
    assert candidate_counts(8) == [1, 2, 4, 8]


def test_on_an_idle_machine_it_takes_the_faster_count_and_applies_it():
    applied = []
    tuner = ThreadTuner(2, applied.append, period=50)
    used = run(tuner, {1: 0.30, 2: 0.20}.get, 20)
    assert applied[0] == 1 and tuner.current == 2 and applied[-1] == 2
    assert used[-5:] == [2] * 5


def test_beside_a_busy_neighbour_one_slow_update_per_period_is_the_cost():
    tuner = ThreadTuner(2, lambda n: None, period=50)
    used = run(tuner, {1: 0.30, 2: 0.80}.get, 500)
    assert tuner.current == 1
    # a probe much slower than the current count stops after one update: about one per period (and one more the
    # first time, whose first update is not counted: a compiled learner compiles there)
    assert 9 <= used.count(2) <= 12


def test_it_follows_the_machine_when_a_neighbour_comes_and_goes():
    tuner = ThreadTuner(4, lambda n: None, period=50)
    run(tuner, {1: 0.30, 2: 0.20, 4: 0.15}.get, 200)
    assert tuner.current == 4
    run(tuner, {1: 0.30, 2: 0.50, 4: 0.90}.get, 200)  # busy: back down, one step per period
    assert tuner.current == 1
    run(tuner, {1: 0.30, 2: 0.20, 4: 0.25}.get, 200)
    assert tuner.current == 2


def test_a_gain_within_the_margin_keeps_the_current_count_and_the_first_update_is_not_counted():
    tuner = ThreadTuner(2, lambda n: None, period=50, margin=0.05)
    for _ in range(3):
        tuner.record(60.0)  # the first updates compile: not a measure of either count
    run(tuner, {1: 0.300, 2: 0.290}.get, 100)
    assert tuner.current == 1


def test_the_first_update_at_a_new_count_is_not_counted_a_compiled_learner_compiles_again_there():
    tuner = ThreadTuner(2, lambda n: None, period=50)
    compiled: set[int] = set()

    def seconds_with(n):
        if n not in compiled:  # torch.compile guards on the thread count: the first update compiles
            compiled.add(n)
            return 120.0
        return {1: 0.30, 2: 0.20}[n]

    run(tuner, seconds_with, 20)
    assert tuner.current == 2
