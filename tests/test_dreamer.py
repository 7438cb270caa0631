"""The flat Dreamer agent: acting with an explicit recurrent state, and one full update."""

import copy
import math

import pytest
import torch

from agents.actions import ActionSpec
from agents.actor_critic import ActorCriticConfig
from agents.dreamer import DreamerAgent, DreamerConfig
from world_models.config import sized

SPACE = {"image": (16, 16, 3), "vector": (4,)}


def agent(spec: ActionSpec, **actor_critic) -> DreamerAgent:
    torch.manual_seed(0)
    config = DreamerConfig(sized("debug"), ActorCriticConfig(units=16, layers=1, bins=31, **actor_critic), horizon=5)
    return DreamerAgent(SPACE, spec, config)


def obs(batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randint(0, 256, (batch, 16, 16, 3), generator=g, dtype=torch.uint8),
            "vector": torch.randn(batch, 4, generator=g)}


def make_batch(spec: ActionSpec, batch=2, steps=6):
    g = torch.Generator().manual_seed(1)
    actions = torch.stack([torch.randint(0, n, (batch, steps), generator=g) for n in spec.sizes], -1) \
        if spec.kind != "continuous" else torch.rand(batch, steps, spec.dim, generator=g) * 2 - 1
    if spec.kind == "discrete":
        actions = actions[..., 0]
    out = {"image": torch.randint(0, 256, (batch, steps, 16, 16, 3), generator=g, dtype=torch.uint8),
           "vector": torch.randn(batch, steps, 4, generator=g), "action": spec.from_env(actions),
           "reward": torch.randn(batch, steps, generator=g), "is_first": torch.zeros(batch, steps, dtype=torch.bool),
           "is_terminal": torch.zeros(batch, steps, dtype=torch.bool)}
    out["is_first"][:, 0] = True
    return out


SPECS = [ActionSpec.discrete(3), ActionSpec.multi_discrete((2, 3)), ActionSpec.continuous(2)]


@pytest.mark.parametrize("spec", SPECS)
def test_act_returns_env_actions_and_the_next_state(spec):
    a = agent(spec)
    state = a.initial_state(3)
    first = torch.ones(3, dtype=torch.bool)
    action, state = a.act(obs(), state, explore=True, is_first=first)
    expected = {"discrete": (3,), "multi_discrete": (3, 2), "continuous": (3, 2)}[spec.kind]
    assert tuple(action.shape) == expected
    assert set(state) == {"deter", "stoch", "logits", "action"}
    assert state["action"].shape == (3, spec.dim)
    action, _ = a.act(obs(seed=1), state, explore=False, is_first=~first)
    assert tuple(action.shape) == expected


def test_is_first_discards_the_carried_state():
    a = agent(ActionSpec.discrete(3))
    first = torch.ones(3, dtype=torch.bool)
    _, fresh = a.act(obs(), a.initial_state(3), explore=False, is_first=first)
    _, carried = a.act(obs(seed=5), fresh, explore=False, is_first=~first)
    _, reset = a.act(obs(), carried, explore=False, is_first=first)
    torch.testing.assert_close(reset["deter"], fresh["deter"])
    assert not torch.allclose(carried["deter"], fresh["deter"])


@pytest.mark.parametrize("spec", SPECS)
def test_update_trains_world_model_and_actor_critic(spec):
    a = agent(spec)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    metrics = a.update(make_batch(spec))
    assert {"world_model/loss", "actor_critic/actor_loss", "actor_critic/critic_loss",
            "actor_critic/return_scale"} <= set(metrics)
    changed = {".".join(k.split(".")[:2]) for k, v in a.state_dict().items() if not torch.equal(before[k], v)}
    # every trained part moved, the actor included (its loss reuses the outputs imagination computed)
    assert {"actor_critic.actor", "actor_critic.critic", "actor_critic.slow_critic", "world_model.encoder",
            "world_model.rssm", "world_model.decoder"} <= changed
    assert metrics["actor_critic/actor_grad_norm"] > 0


def test_the_replay_value_loss_trains_the_critic_on_the_replayed_sequences():
    spec = ActionSpec.discrete(3)
    plain, replayed = agent(spec), agent(spec, replay_value=0.3)
    batch = make_batch(spec)
    batch["is_terminal"][:, 3], batch["is_first"][:, 4] = True, True  # an episode ends inside each sequence
    torch.manual_seed(5)
    without = plain.update(batch)
    torch.manual_seed(5)
    with_replay = replayed.update(batch)
    assert "actor_critic/replay_return" not in without and math.isfinite(with_replay["actor_critic/replay_return"])
    # the same imagination (same seed), but the critic also learnt from the replayed returns
    assert with_replay["actor_critic/return"] == without["actor_critic/return"]
    assert with_replay["actor_critic/replay_loss"] > 0
    assert not torch.equal(plain.actor_critic.critic[1].weight, replayed.actor_critic.critic[1].weight)
    torch.testing.assert_close(plain.actor_critic.actor[1].weight, replayed.actor_critic.actor[1].weight)


def test_weights_and_optimiser_state_round_trip():
    spec = ActionSpec.discrete(3)
    a, b = agent(spec), agent(spec)
    a.update(make_batch(spec))
    b.load_state_dict(a.state_dict())
    # deep copies, as a checkpoint gives: torch's optimisers keep the loaded tensors themselves
    b.load_optimizer_state_dict(copy.deepcopy(a.optimizer_state_dict()))
    torch.manual_seed(3)
    ma = a.update(make_batch(spec))
    torch.manual_seed(3)
    mb = b.update(make_batch(spec))
    assert ma == pytest.approx(mb)


@pytest.mark.parametrize(("spec", "actor_grad", "dynamics"), [
    (ActionSpec.continuous(2), "auto", True), (ActionSpec.discrete(3), "auto", False),
    (ActionSpec.continuous(2), "reinforce", False), (ActionSpec.discrete(3), "dynamics", True)])
def test_dynamics_gradients_reach_the_actor_and_leave_the_world_model_and_critic_alone(spec, actor_grad, dynamics):
    torch.manual_seed(0)
    config = DreamerConfig(sized("debug"), ActorCriticConfig(units=16, layers=1, bins=31, actor_grad=actor_grad),
                           horizon=5)
    a = DreamerAgent(SPACE, spec, config)
    assert a.actor_critic.dynamics is dynamics
    _, post = a.world_model.update_and_states(make_batch(spec))
    start = {k: v.detach().flatten(0, 1) for k, v in post.items()}
    trajectory = a.imagine(start)
    assert trajectory["reward"].requires_grad is dynamics and trajectory["feat"].requires_grad is dynamics
    # the returns differentiated by the actions: only the actor's weights receive a gradient
    a.zero_grad(set_to_none=True)
    actor_loss, _, metrics = a.actor_critic.loss(**trajectory)
    actor_loss.backward()
    assert all(p.grad is None for p in a.world_model.parameters())
    assert all(p.grad is None for p in a.actor_critic.critic.parameters())
    assert all(p.grad is not None for p in a.actor_critic.actor.parameters())
    # the world model and the critic are trainable again afterwards
    assert all(p.requires_grad for p in [*a.world_model.parameters(), *a.actor_critic.critic.parameters()])
    assert torch.isfinite(torch.stack(list(metrics.values()))).all()


def test_no_start_keeps_imagination_out_of_the_marked_sequences():
    a = agent(ActionSpec.discrete(3))
    batch = make_batch(ActionSpec.discrete(3), batch=3, steps=6)
    batch["no_start"] = torch.zeros(3, 6, dtype=torch.bool)
    batch["no_start"][1] = True  # the sequence drawn around a reward: the world model only
    seen = {}
    learn = a.learn_in_imagination

    def spy(start, terminal, post, batch):
        seen["start"], seen["post"] = start["logits"], post["logits"]  # logits: the observation's own
        return learn(start, terminal, post, batch)

    a.learn_in_imagination = spy
    a.imagination_starts = 8
    a.update(batch)
    post = seen["post"].detach()
    assert seen["start"].shape[0] == 8  # the subset is drawn among the 12 allowed states
    allowed = torch.cat([post[0], post[2]])
    for row in seen["start"]:
        assert (row == allowed).all(-1).any() and not (row == post[1]).all(-1).any()


def test_observe_in_chunks_is_the_same_as_in_one_pass():
    model = agent(ActionSpec.discrete(3)).world_model
    batch = make_batch(ActionSpec.discrete(3), steps=7)
    torch.manual_seed(3)
    whole = model.observe(batch)
    model.rssm.chunk = 3  # 3 + 3 + 1 steps
    torch.manual_seed(3)
    chunked = model.observe(batch)
    for a, b in zip(whole, chunked, strict=True):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow  # 90 s of compiling each: `make test-guard` runs them after the suite
@pytest.mark.parametrize("spec", [ActionSpec.discrete(3), ActionSpec.continuous(2)])
def test_compiled_update_keeps_the_maths(spec):
    """train.compile compiles the world model's pass in chunks, the imagination and the actor-critic's loss as
    regions: with the eager random numbers (inductor's own differ) two updates match the eager agent's."""
    torch.manual_seed(0)
    config = DreamerConfig(sized("debug"), ActorCriticConfig(units=16, layers=1, bins=31, replay_value=0.3), horizon=3)
    eager = DreamerAgent({"vector": (4,)}, spec, config)
    compiled = copy.deepcopy(eager)
    compiled.compile_networks()
    batch = {k: v for k, v in make_batch(spec, steps=4).items() if k != "image"}  # one chunk of 4
    with torch._inductor.config.patch(fallback_random=True):
        for seed in (1, 2):
            torch.manual_seed(seed)
            expected = eager.update(batch)
            torch.manual_seed(seed)
            got = compiled.update(batch)
            for key, value in expected.items():
                assert got[key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
    assert compiled.world_model.rssm.chunk > 0
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)
