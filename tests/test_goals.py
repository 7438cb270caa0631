"""Director's goal space: the goal autoencoder, the max-cosine goal reward, chunked manager rewards."""

import math

import pytest
import torch

from agents.goals import GoalAutoencoder, GoalConfig, chunk_sums, max_cosine


def test_max_cosine_golden_values():
    g = torch.tensor([3.0, 4.0])  # |g| = 5
    assert float(max_cosine(g, g)) == pytest.approx(1.0)
    assert float(max_cosine(g, 0.5 * g)) == pytest.approx(0.5)  # right way, half as long: 12.5 / 25
    assert float(max_cosine(g, 2 * g)) == pytest.approx(0.5)  # twice as long: 50 / 100
    assert float(max_cosine(g, torch.tensor([4.0, -3.0]))) == pytest.approx(0.0)  # orthogonal
    assert float(max_cosine(g, -g)) == pytest.approx(-1.0)
    assert float(max_cosine(torch.zeros(2), torch.zeros(2))) == 0.0


def test_chunk_sums():
    values = torch.arange(1.0, 11.0).reshape(1, 10)  # 1..10
    torch.testing.assert_close(chunk_sums(values, 4), torch.tensor([[10.0, 26.0, 19.0]]))  # 1-4, 5-8, 9-10
    torch.testing.assert_close(chunk_sums(values, 5), torch.tensor([[15.0, 40.0]]))


def test_codes_are_one_hot_groups_and_decode_to_states():
    torch.manual_seed(0)
    ae = GoalAutoencoder(16, GoalConfig(units=32, layers=1))
    dist = ae.encode(torch.randn(5, 16))
    code = dist.sample()
    assert code.shape == (5, 8, 8) and torch.all(code.sum(-1) == 1)
    assert ae.decode(code).shape == (5, 16)


def test_kl_to_the_uniform_prior_is_zero_for_uniform_codes():
    ae = GoalAutoencoder(4, GoalConfig(units=8, layers=1))
    with torch.no_grad():
        ae.encoder[-1].weight.zero_()
        ae.encoder[-1].bias.zero_()
    _, metrics = ae.loss(torch.randn(3, 4))
    assert float(metrics["kl"]) == pytest.approx(0.0, abs=1e-5)
    # below the free nats the KL term is the constant kl_free: no pull towards the prior
    assert float(metrics["loss"]) == pytest.approx(float(metrics["recon"]) + 6.0, abs=1e-5)
    with torch.no_grad():
        ae.encoder[-1].bias.copy_(torch.tensor([50.0, 0, 0, 0, 0, 0, 0, 0] * 8))
    _, metrics = ae.loss(torch.randn(3, 4))
    assert float(metrics["kl"]) == pytest.approx(8 * math.log(8), rel=1e-3)  # every group certain


def test_autoencoder_learns_to_reconstruct_a_few_states():
    torch.manual_seed(0)
    states = torch.randn(6, 16)  # six distinct "world-model states"
    ae = GoalAutoencoder(16, GoalConfig(units=64, layers=1, kl_scale=0.0, lr=3e-3))
    before = float(ae.reconstruction_error(states).mean())
    for _ in range(300):
        ae.update(states)
    after = float(ae.reconstruction_error(states).mean())
    assert after < 0.1 * before, (before, after)
    # unseen states reconstruct worse: the manager's exploration bonus
    assert float(ae.reconstruction_error(torch.randn(64, 16) * 2).mean()) > 5 * after


def test_updates_takes_that_many_adam_steps_per_call():
    torch.manual_seed(0)
    states = torch.randn(6, 16)
    one = GoalAutoencoder(16, GoalConfig(units=32, layers=1, lr=3e-3))
    four = GoalAutoencoder(16, GoalConfig(units=32, layers=1, lr=3e-3, updates=4))
    four.load_state_dict(one.state_dict())
    torch.manual_seed(1)
    for _ in range(4):
        one.update(states)
    torch.manual_seed(1)  # the same sampled codes
    four.update(states)
    assert four.optimizer.state_dict()["state"][0]["step"] == 4
    for a, b in zip(one.parameters(), four.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="at least 1"):
        GoalConfig(updates=0)


def test_random_code_match_is_high_only_when_random_codes_decode_to_real_states():
    torch.manual_seed(0)
    ae = GoalAutoencoder(4, GoalConfig(units=8, layers=1))
    states = torch.randn(32, 4)
    with torch.no_grad():  # every code decodes to the first state
        ae.decoder[-1].weight.zero_()
        ae.decoder[-1].bias.copy_(states[0])
    assert float(ae.random_code_match(states)) == pytest.approx(1.0)
    assert float(ae.random_code_match(-states[:1])) == pytest.approx(-1.0)  # opposite to the only state


def test_random_code_match_leaves_the_global_random_stream_alone():
    ae = GoalAutoencoder(4, GoalConfig(units=8, layers=1))
    states = torch.randn(32, 4)
    torch.manual_seed(3)
    first = ae.random_code_match(states)
    drawn = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(3), drawn)  # the metric drew nothing from the stream training uses
    assert torch.equal(ae.random_code_match(states), first)  # and it scores the same codes every time
