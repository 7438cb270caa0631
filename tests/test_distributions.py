"""Golden values for symlog, two-hot heads, mixed categorical latents, their KL and the return scale.

Expected numbers are worked out by hand (derivations in the comments) and written as literals,
never recomputed with the code under test.
"""

import pytest
import torch

from world_models.distributions import (
    CategoricalLatent,
    ReturnNormalizer,
    TwoHot,
    kl_categorical,
    symexp,
    symlog,
    twohot_bins,
    twohot_encode,
)

LN2 = 0.6931471805599453


def approx(values, rel=1e-6, tol=1e-6):
    return pytest.approx(values, rel=rel, abs=tol)


# ---------------------------------------------------------------- symlog


def test_symlog_golden_values():
    x = torch.tensor([0.0, 1.0, -1.0, 10.0, 1e6], dtype=torch.float64)
    # log(1) = 0, log(2), -log(2), log(11), log(1_000_001) = log(1e6) + log1p(1e-6)
    expected = [0.0, LN2, -LN2, 2.3978952727983707, 13.815511557963774]
    assert symlog(x).tolist() == approx(expected, rel=1e-12)


def test_symexp_golden_values_and_round_trip():
    y = torch.tensor([0.0, LN2, -LN2, 2.3978952727983707, 13.815511557963774], dtype=torch.float64)
    assert symexp(y).tolist() == approx([0.0, 1.0, -1.0, 10.0, 1e6], rel=1e-12)
    x = torch.tensor([-1e6, -3.5, -1e-3, 0.0, 1e-3, 0.5, 7.0, 1e6])
    assert symexp(symlog(x)).tolist() == approx(x.tolist(), rel=1e-5)
    assert symlog(torch.tensor(0.0)).item() == 0.0


# ---------------------------------------------------------------- two-hot


def test_twohot_bins_endpoints_count_and_spacing():
    bins = twohot_bins()
    assert bins.shape == (255,) and bins.dtype == torch.float32
    assert bins[0].item() == -20.0 and bins[-1].item() == 20.0
    # 40 / 254 between neighbours, up to float32 rounding of the bins (one ulp near 20 is 1.9e-6);
    # the centre bin (index 127) is exactly 0 and the range exactly symmetric.
    assert torch.diff(bins).tolist() == approx([0.15748031496062992] * 254, rel=0.0, tol=4e-6)
    assert bins[127].item() == 0.0
    assert torch.equal(bins, -bins.flip(0))
    assert twohot_bins(5, -2.0, 2.0).tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert twohot_bins(3, 0.0, 1.0).tolist() == [0.0, 0.5, 1.0]


def test_twohot_bins_reject_bad_arguments():
    with pytest.raises(ValueError, match="num_bins"):
        twohot_bins(1)
    with pytest.raises(ValueError, match="low < high"):
        twohot_bins(5, 1.0, -1.0)


def test_twohot_encode_golden_weights():
    bins = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    y = torch.tensor([0.25, -1.5, 1.0, 2.0, -2.0, -7.0, 9.0])
    expected = [
        [0.0, 0.0, 0.75, 0.25, 0.0],  # 0.25 is a quarter of the way from bin 0 to bin 1
        [0.5, 0.5, 0.0, 0.0, 0.0],  # halfway between -2 and -1
        [0.0, 0.0, 0.0, 1.0, 0.0],  # exactly on a bin
        [0.0, 0.0, 0.0, 0.0, 1.0],  # exactly on the top bin
        [1.0, 0.0, 0.0, 0.0, 0.0],  # exactly on the bottom bin
        [1.0, 0.0, 0.0, 0.0, 0.0],  # below the range: clamped to the bottom bin
        [0.0, 0.0, 0.0, 0.0, 1.0],  # above the range: clamped to the top bin
    ]
    assert twohot_encode(y, bins).tolist() == expected


def test_twohot_encode_keeps_batch_shape_and_every_bin_maps_to_itself():
    bins = twohot_bins()
    assert twohot_encode(torch.zeros(2, 3), bins).shape == (2, 3, 255)
    assert torch.equal(twohot_encode(bins, bins), torch.eye(255))


def test_twohot_mean_of_a_concentrated_distribution_is_symexp_of_its_bin():
    bins = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    big = -1e4  # exp(-1e4) underflows to exactly 0 in float32
    logits = torch.tensor(
        [
            [big, big, big, 0.0, big],  # all on bin 1: e - 1
            [big, big, big, big, 0.0],  # all on bin 2: e^2 - 1
            [0.0, big, big, big, big],  # all on bin -2: -(e^2 - 1)
            [big, big, 0.0, 0.0, big],  # half on 0, half on 1: symexp(0.5) = e^0.5 - 1
        ]
    )
    dist = TwoHot(logits, bins)
    expected = [1.718281828459045, 6.38905609893065, -6.38905609893065, 0.6487212707001282]
    assert dist.mean().tolist() == approx(expected)
    assert dist.mode().tolist() == approx(expected)
    # Bin 200 of the default bins sits at -20 + 200 * 40 / 254 = 11.496062992125985.
    one_bin = torch.full((255,), big)
    one_bin[200] = 0.0
    assert TwoHot(one_bin, twohot_bins()).mean().item() == pytest.approx(98326.89028874354, rel=1e-5)


def test_twohot_mean_of_uniform_logits_is_exactly_zero():
    dist = TwoHot(torch.zeros(4, 255), twohot_bins())
    assert torch.equal(dist.mean(), torch.zeros(4))


def test_twohot_log_prob_golden_values():
    bins = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    # Uniform logits: the two-hot weights sum to 1, so log_prob = log(1/5) for any target.
    uniform = TwoHot(torch.zeros(3, 5), bins)
    assert uniform.log_prob(torch.tensor([0.0, 3.0, -1e6])).tolist() == approx([-1.6094379124341003] * 3)
    # probs (.1, .2, .3, .25, .15); target e^0.25 - 1 has symlog 0.25 -> 0.75 on bin 0, 0.25 on bin 1:
    # 0.75 * log(0.3) + 0.25 * log(0.25) = -1.2495531935244248.
    logits = torch.tensor([0.1, 0.2, 0.3, 0.25, 0.15]).log()
    target = torch.tensor(0.2840254166877414)
    assert TwoHot(logits, bins).log_prob(target).item() == pytest.approx(-1.2495531935244248, rel=1e-5)


def test_twohot_log_prob_is_finite_for_huge_targets_and_gradients_reach_the_logits():
    bins = twohot_bins()
    logits = torch.zeros(4, 255)
    logits[:, 0] = 50.0  # confident on the wrong end: the target bins have tiny probability
    logits.requires_grad_(True)
    targets = torch.tensor([1e6, -1e6, 1e30, float("inf")])
    log_prob = TwoHot(logits, bins).log_prob(targets)
    assert torch.isfinite(log_prob).all()
    (-log_prob.sum()).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # Beyond the range all weight is on the top bin, whose log-probability is
    # 0 - log(e^50 + 254 * e^0) = -50 - log(1 + 254 e^-50) = -50 to float precision.
    assert log_prob[2:].tolist() == approx([-50.0, -50.0])


def test_twohot_rejects_mismatched_shapes():
    bins = twohot_bins(5, -2.0, 2.0)
    with pytest.raises(ValueError, match="number of bins"):
        TwoHot(torch.zeros(3, 7), bins)
    with pytest.raises(ValueError, match="target shape"):
        TwoHot(torch.zeros(3, 5), bins).log_prob(torch.zeros(3, 1))


# ---------------------------------------------------------------- categorical latents


def test_unimix_floors_probabilities_at_unimix_over_classes():
    dist = CategoricalLatent(torch.tensor([[[100.0, 0.0, 0.0, 0.0]]]), unimix=0.01)
    # 0.99 * ~1 + 0.0025 and 0.99 * ~0 + 0.01 / 4
    assert dist.probs[0, 0].tolist() == approx([0.9925, 0.0025, 0.0025, 0.0025])
    assert torch.isfinite(dist.logits).all()
    assert dist.logits[0, 0, 1].item() == pytest.approx(-5.991464547107982)  # log(0.0025)
    # Without the mix a confident logit still gives finite log-probabilities.
    assert torch.isfinite(CategoricalLatent(torch.tensor([[1000.0, 0.0]]), unimix=0.0).logits).all()


def test_sample_is_exactly_one_hot_with_straight_through_gradients():
    logits = torch.randn(3, 4, 8, 5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    dist = CategoricalLatent(logits)
    sample = dist.sample(generator=torch.Generator().manual_seed(1))
    assert sample.shape == (3, 4, 8, 5)
    assert torch.equal(sample.detach().sum(-1), torch.ones(3, 4, 8))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    weights = torch.arange(5.0)
    (sample * weights).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_mode_is_the_argmax_one_hot_with_straight_through_gradients():
    logits = torch.tensor([[[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]], requires_grad=True)
    mode = CategoricalLatent(logits).mode()
    assert mode.tolist() == [[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]]
    (mode * torch.arange(3.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_sample_frequencies_follow_the_mixed_probabilities():
    # softmax (0.8, 0.2) mixed with 1%: (0.99 * 0.8 + 0.005, 0.99 * 0.2 + 0.005) = (0.797, 0.203)
    logits = torch.tensor([0.8, 0.2]).log().expand(20000, 1, 2)
    sample = CategoricalLatent(logits).sample(generator=torch.Generator().manual_seed(2))
    assert sample[:, 0, 0].mean().item() == pytest.approx(0.797, abs=0.015)


def test_entropy_and_log_prob_golden_values():
    # Group 1: probs (0.8, 0.2); group 2: (0.5, 0.5).
    logits = torch.tensor([[0.8, 0.2], [0.5, 0.5]]).log()
    dist = CategoricalLatent(logits, unimix=0.0)
    # -(0.8 log 0.8 + 0.2 log 0.2) = 0.5004024235381879, plus log 2 for the fair group.
    assert dist.entropy().item() == pytest.approx(1.1935496040981333, rel=1e-5)
    # log 0.8 + log 0.5 = log 0.4
    assert dist.log_prob(torch.tensor([[1.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(-0.916290731874155)
    # With 1% mix the first group becomes (0.797, 0.203): entropy 0.5045332862408528.
    mixed = CategoricalLatent(logits[:1], unimix=0.01)
    assert mixed.entropy().item() == pytest.approx(0.5045332862408528, rel=1e-5)


def test_kl_golden_values_on_two_classes():
    post = torch.tensor([[0.8, 0.2], [0.5, 0.5]]).log()
    prior = torch.zeros(2, 2)  # uniform, unchanged by the mix
    # KL((0.8, 0.2) || (0.5, 0.5)) = log 2 - H(0.8, 0.2) = 0.19274475702175742; the second group adds 0.
    assert kl_categorical(post, prior, unimix=0.0).item() == pytest.approx(0.19274475702175742, rel=1e-5)
    # Mixed: log 2 - H(0.797, 0.203) = 0.18861389431909248
    assert kl_categorical(post, prior).item() == pytest.approx(0.18861389431909248, rel=1e-5)


def test_kl_is_zero_for_equal_logits_and_keeps_batch_shape():
    logits = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    kl = kl_categorical(logits, logits.clone())
    assert kl.shape == (3, 4)
    assert torch.equal(kl, torch.zeros(3, 4))
    other = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    assert (kl_categorical(logits, other) > 0).all()


def test_categorical_rejects_bad_arguments():
    with pytest.raises(ValueError, match="groups, classes"):
        CategoricalLatent(torch.zeros(4))
    with pytest.raises(ValueError, match="unimix"):
        CategoricalLatent(torch.zeros(2, 4), unimix=1.0)
    with pytest.raises(ValueError, match="one shape"):
        kl_categorical(torch.zeros(2, 4), torch.zeros(2, 3))


# ---------------------------------------------------------------- return normaliser
# Percentiles follow torch.quantile's default "linear" interpolation (numpy's default, type 7):
# over n sorted values the q-quantile sits at position q * (n - 1).


def test_return_normalizer_is_one_before_any_update():
    assert ReturnNormalizer().scale().item() == 1.0


def test_return_normalizer_golden_values_after_one_and_two_updates():
    norm = ReturnNormalizer()
    # 0, 10, ..., 1000 (101 values): p5 at position 5 -> 50, p95 at position 95 -> 950.
    norm.update(torch.arange(101.0).reshape(1, 101) * 10)
    # Not debiased: low = 0.01 * 50 = 0.5, high = 0.01 * 950 = 9.5, scale = 9.0.
    assert (norm.low.item(), norm.high.item()) == (approx(0.5), approx(9.5))
    assert norm.scale().item() == pytest.approx(9.0, rel=1e-5)
    # 0, 20, ..., 2000: p5 = 100, p95 = 1900.
    # low = 0.99 * 0.5 + 0.01 * 100 = 1.495, high = 0.99 * 9.5 + 0.01 * 1900 = 28.405, scale = 26.91.
    norm.update(torch.arange(101.0) * 20)
    assert norm.scale().item() == pytest.approx(26.91, rel=1e-5)


def test_return_normalizer_interpolates_between_returns():
    norm = ReturnNormalizer()
    # Five returns 0..400: p5 at position 0.2 -> 20, p95 at position 3.8 -> 380; scale 0.01 * 360 = 3.6.
    norm.update(torch.tensor([400.0, 0.0, 300.0, 100.0, 200.0]))
    assert norm.scale().item() == pytest.approx(3.6, rel=1e-5)


def test_return_normalizer_scale_is_floored_at_one():
    norm = ReturnNormalizer()
    for _ in range(50):
        norm.update(torch.linspace(-0.1, 0.1, 64))
    assert norm.scale().item() == 1.0


def test_return_normalizer_state_dict_round_trip():
    norm = ReturnNormalizer()
    norm.update(torch.arange(101.0) * 10)
    state = norm.state_dict()
    assert set(state) == {"low", "high"}
    restored = ReturnNormalizer()
    restored.load_state_dict(state)
    assert restored.scale().item() == pytest.approx(9.0, rel=1e-5)
    assert torch.equal(restored.low, norm.low) and torch.equal(restored.high, norm.high)


def test_return_normalizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="decay"):
        ReturnNormalizer(decay=1.0)
    with pytest.raises(ValueError, match="quantiles"):
        ReturnNormalizer(low_quantile=0.9, high_quantile=0.1)
    with pytest.raises(ValueError, match="empty"):
        ReturnNormalizer().update(torch.zeros(0))


def test_twohot_raw_bins_are_the_symlog_bins_raw_values_and_start_at_exactly_zero():
    raw = twohot_bins(raw=True)
    assert torch.allclose(raw, symexp(twohot_bins()), rtol=1e-6)
    assert torch.equal(raw, -raw.flip(0)) and raw[127].item() == 0.0
    assert torch.equal(TwoHot(torch.zeros(4, 255), raw, raw=True).mean(), torch.zeros(4))
    # a target between two raw bins splits its weight linearly in raw space: 10 lies between bins 142 and 143
    logits = torch.linspace(-3.0, 3.0, 255)
    log_probs = torch.log_softmax(logits, -1)
    below, above = raw[142].item(), raw[143].item()
    assert below < 10.0 < above
    share = (10.0 - below) / (above - below)
    expected = (1 - share) * log_probs[142].item() + share * log_probs[143].item()
    assert TwoHot(logits, raw, raw=True).log_prob(torch.tensor(10.0)).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("raw, low, high", [(True, 0.45, 0.55), (False, 0.05, 0.2)])
def test_twohot_readout_of_a_rare_large_reward(raw, low, high):
    """A head fitted to a reward of 10 on one step in 20: the raw readout gives its expectation, 0.5; symexp of the
    expected symlog bin reads about a quarter of it (symlog 10 = 2.4), which is why ``reward_readout`` exists."""
    bins = twohot_bins(raw=raw)
    targets = torch.zeros(400)
    targets[::20] = 10.0
    logits = torch.zeros(255, requires_grad=True)  # a zero-initialised head with no input
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        (-TwoHot(logits.expand(400, 255), bins, raw=raw).log_prob(targets).mean()).backward()
        opt.step()
    assert low < TwoHot(logits.detach(), bins, raw=raw).mean().item() < high
