"""The RSSM world model: shapes, resets, gradients, KL balancing, sizes, reports and weight files."""

import numpy as np
import pytest
import torch

from world_models.config import WorldModelConfig, sized
from world_models.distributions import kl_categorical
from world_models.networks import GRUCell
from world_models.world_model import CheckpointError, WorldModel, kl_balance

SPACE = {"image": (16, 16, 3), "vector": (5,)}
ACTIONS = 3


def tiny(**changes) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(SPACE, ACTIONS, sized("debug", **changes))


def make_batch(batch=3, steps=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {
        "image": torch.randint(0, 256, (batch, steps, *SPACE["image"]), generator=g, dtype=torch.uint8),
        "vector": torch.randn(batch, steps, *SPACE["vector"], generator=g),
        "action": torch.nn.functional.one_hot(torch.randint(0, ACTIONS, (batch, steps), generator=g), ACTIONS).float(),
        "reward": torch.randn(batch, steps, generator=g),
        "is_first": torch.zeros(batch, steps, dtype=torch.bool),
        "is_terminal": torch.zeros(batch, steps, dtype=torch.bool),
    }
    out["is_first"][:, 0] = True
    out["is_terminal"][0, -1] = True
    return out


def test_observe_and_imagine_shapes():
    model, batch = tiny(), make_batch()
    c = model.config
    post, prior = model.observe(batch)
    for state in (post, prior):
        assert state["deter"].shape == (3, 6, c.deter)
        assert state["stoch"].shape == state["logits"].shape == (3, 6, c.stoch, c.classes)
    # samples are one-hot per latent
    assert torch.all(post["stoch"].sum(-1) == 1)
    start = {k: v.reshape(-1, *v.shape[2:]) for k, v in post.items()}
    policy = lambda state: torch.nn.functional.one_hot(state["deter"][:, :ACTIONS].argmax(-1), ACTIONS).float()  # noqa: E731
    trajectory = model.imagine(policy, start, horizon=4)
    assert trajectory["deter"].shape == (18, 5, c.deter)
    assert trajectory["action"].shape == (18, 5, ACTIONS)
    torch.testing.assert_close(trajectory["deter"][:, 0], start["deter"])
    assert model.rssm.feat(trajectory).shape == (18, 5, model.rssm.feat_dim)


def test_is_first_resets_the_state():
    model, batch = tiny(), make_batch(steps=8)
    batch["is_first"][:, 4] = True
    post, _ = model.observe(batch, sample=False)
    tail = {k: v[:, 4:] for k, v in batch.items()}
    fresh, _ = model.observe(tail, sample=False)
    torch.testing.assert_close(post["deter"][:, 4:], fresh["deter"])
    torch.testing.assert_close(post["logits"][:, 4:], fresh["logits"])
    # and the reset matters: without it the state after step 4 differs
    batch["is_first"][:, 4] = False
    carried, _ = model.observe(batch, sample=False)
    assert not torch.allclose(carried["deter"][:, 4:], fresh["deter"])


@pytest.mark.parametrize("blocks", [1, 4])
def test_gru_cell_keeps_blocks_apart(blocks):
    torch.manual_seed(0)
    cell = GRUCell(in_dim=6, size=16, blocks=blocks)
    x = torch.randn(5, 6)
    state = torch.randn(5, 16, requires_grad=True)
    out = cell(x, state)
    assert out.shape == (5, 16)
    (grad,) = torch.autograd.grad(out[:, :4].sum(), state)  # the first block's units
    assert grad[:, :4].abs().sum() > 0
    # with blocks, a block's units see only their own part of the state
    assert (grad[:, 4:].abs().sum() == 0) == (blocks > 1)


def test_block_gru_world_model_trains():
    model = tiny(blocks=4)
    metrics = model.update(make_batch())
    assert np.isfinite(metrics["world_model/loss"])


def test_gradients_reach_every_parameter():
    model = tiny()
    model.update(make_batch(seed=1))  # the zero-initialised reward output blocks the very first step
    loss, metrics = model.loss(make_batch())
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"
    assert metrics["world_model/loss"] == pytest.approx(loss.item())


def test_loss_is_pure_and_update_steps():
    model, batch = tiny(), make_batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.loss(batch)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    metrics = model.update(batch)
    assert {"world_model/loss", "world_model/loss_image", "world_model/loss_vector", "world_model/loss_reward",
            "world_model/loss_cont", "world_model/loss_dyn", "world_model/loss_rep", "world_model/kl",
            "world_model/grad_norm"} <= set(metrics)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(before[k], v)]
    assert changed


def test_nan_in_the_batch_or_the_loss_is_refused():
    model, batch = tiny(), make_batch()
    batch["vector"][0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"batch\['vector'\] holds NaN"):
        model.update(batch)
    with torch.no_grad():
        model.cont_head[-1].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="world-model loss is nan"):
        model.update(make_batch())


def test_kl_balance_golden_values_and_gradient_routing():
    # two classes, one latent: post = (0.8, 0.2), prior = (0.5, 0.5)
    post = torch.log(torch.tensor([[[0.8, 0.2]]])).requires_grad_()
    prior = torch.log(torch.tensor([[[0.5, 0.5]]])).requires_grad_()
    dyn_kl, rep_kl, dyn, rep = kl_balance(post, prior, free_nats=0.0)
    expected = 0.8 * torch.log(torch.tensor(1.6)) + 0.2 * torch.log(torch.tensor(0.4))  # 0.192745
    torch.testing.assert_close(dyn_kl, expected.reshape(1))
    torch.testing.assert_close(rep_kl, expected.reshape(1))
    # the dynamics loss trains only the prior
    (g_post, g_prior) = torch.autograd.grad(dyn.sum(), (post, prior), allow_unused=True)
    assert g_post is None and g_prior.abs().sum() > 0
    # the representation loss trains only the posterior
    (g_post, g_prior) = torch.autograd.grad(rep.sum(), (post, prior), allow_unused=True)
    assert g_prior is None and g_post.abs().sum() > 0
    # free bits: below one nat, no gradient at all and the loss is the floor
    _, _, dyn, rep = kl_balance(post, prior, free_nats=1.0)
    assert float(dyn.detach()) == float(rep.detach()) == 1.0
    assert torch.autograd.grad((dyn + rep).sum(), prior, allow_unused=True)[0].abs().sum() == 0


def test_prior_heads_train_the_reward_and_continue_heads_on_the_prior_and_the_prior_with_them():
    batch = make_batch()
    plain, both = tiny(free_nats=0.0), tiny(free_nats=0.0, prior_heads=0.5)
    loss, metrics = both.loss(batch)
    assert "world_model/loss_prior_reward" not in plain.loss(batch)[1]
    prediction = sum(metrics[f"world_model/loss_{k}"] for k in ("image", "vector", "reward", "cont", "prior_reward",
                                                                 "prior_cont"))
    assert loss.item() == pytest.approx(prediction + 0.5 * metrics["world_model/loss_dyn"]
                                        + 0.1 * metrics["world_model/loss_rep"], rel=1e-5)
    # without the dynamics loss, only the heads on the prior's features train the prior's network
    for model in (tiny(free_nats=0.0, dyn_scale=0.0), tiny(free_nats=0.0, dyn_scale=0.0, prior_heads=0.5)):
        model.loss(batch)[0].backward()
        grad = model.rssm.prior_net[-1].weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == bool(model.config.prior_heads)
    with pytest.raises(ValueError, match="prior_heads must be at least 0"):
        WorldModelConfig(prior_heads=-1.0)


def test_world_model_loss_uses_the_published_balance():
    model, batch = tiny(free_nats=0.0), make_batch()
    loss, metrics = model.loss(batch)
    prediction = sum(metrics[f"world_model/loss_{k}"] for k in ("image", "vector", "reward", "cont"))
    expected = prediction + 0.5 * metrics["world_model/loss_dyn"] + 0.1 * metrics["world_model/loss_rep"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    post, prior = model.observe(batch)
    assert kl_categorical(post["logits"], prior["logits"], unimix=0.0).shape == (3, 6)


@pytest.mark.parametrize("size", ["12M", "25M", "50M", "100M", "200M"])
def test_published_sizes_have_their_parameter_counts(size):
    # an Atari-like space: 64 x 64 RGB, 18 actions; the count is the world model's
    with torch.device("meta"):
        model = WorldModel({"image": (64, 64, 3)}, 18, sized(size))
    count = sum(p.numel() for p in model.parameters())
    nominal = float(size[:-1]) * 1e6
    assert 0.9 * nominal <= count <= 1.1 * nominal, f"{size}: {count / 1e6:.1f}M parameters"


def test_debug_size_is_small():
    count = sum(p.numel() for p in tiny().parameters())
    assert count < 300_000


def test_unknown_size_and_field_are_named():
    with pytest.raises(ValueError, match="accepted: debug, 12M"):
        sized("huge")
    with pytest.raises(ValueError, match="valid fields"):
        WorldModelConfig().replace(detr=3)
    with pytest.raises(ValueError, match="no observation key matches"):
        WorldModel({"pixels": (16, 16, 3)}, 2, sized("debug"))


def test_open_loop_report():
    model, batch = tiny(), make_batch(steps=8)
    report = model.report(batch, context=3)
    for kind in ("true", "pred", "error"):
        video = report[f"openloop/image_{kind}"]
        assert video.shape == (3, 8, 16, 16, 3) and video.dtype == torch.uint8
    assert report["openloop/vector_mse"].shape == (5,)
    assert report["openloop/vector_copy_mse"].shape == (5,)
    with pytest.raises(ValueError, match="context must be between 1 and 7"):
        model.report(batch, context=8)


def test_save_and_load_round_trip(tmp_path):
    model, batch = tiny(), make_batch()
    model.update(batch)
    model.save(tmp_path / "wm.pt")
    again = WorldModel.from_file(tmp_path / "wm.pt")
    assert again.config == model.config
    a, _ = model.observe(batch, sample=False)
    b, _ = again.observe(batch, sample=False)
    torch.testing.assert_close(a["deter"], b["deter"])
    assert again.optimizer.state_dict()["state"].keys() == model.optimizer.state_dict()["state"].keys()


def test_loading_another_size_names_the_shapes(tmp_path):
    tiny().save(tmp_path / "wm.pt")
    other = WorldModel(SPACE, ACTIONS, sized("debug", deter=96))
    with pytest.raises(CheckpointError, match=r"rssm\.gru\.gates\.weight is \[.*\] in the file but \[.*\] here"):
        other.load(tmp_path / "wm.pt")
    with pytest.raises(CheckpointError, match="'deter': \\(64, 96\\)"):
        other.load(tmp_path / "wm.pt")


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "wm.pt"
    tiny().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable world-model file"):
        WorldModel.from_file(path)
    torch.save({"weights": {}}, path)
    with pytest.raises(CheckpointError, match="not a Forethought world-model file"):
        WorldModel.from_file(path)
    model = tiny()
    model.save(path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        WorldModel.from_file(path)
    with pytest.raises(CheckpointError, match="no world-model file"):
        WorldModel.from_file(tmp_path / "missing.pt")


def test_posterior_from_the_embedding_projected_once_equals_the_one_layer_over_deter_and_embed():
    torch.manual_seed(0)
    model = WorldModel({"vector": (3,)}, 2, sized("debug"))
    rssm = model.rssm
    state, embed = rssm.initial(4), torch.randn(4, model.encoder.out_dim)
    action, first = torch.zeros(4, 2), torch.zeros(4, dtype=torch.bool)
    post, _ = rssm.obs_step(state, action, rssm.embed_projection(embed), first, sample=False, projected=True)
    prior = rssm.img_step(state, action, sample=False)
    logits = rssm.post_net(torch.cat([prior["deter"], embed], -1))  # the layer as a whole, on [deter, embed]
    torch.testing.assert_close(post["logits"], rssm._latent(logits, sample=False)["logits"])


@pytest.mark.parametrize("readout, low, high", [("raw", 0.35, 0.65), ("symlog", 0.0, 0.25)])
def test_reward_readout_of_a_rare_reward(readout, low, high):
    """Where nothing in the observations tells when a reward of 10 comes (one step in 20), the 'raw' readout predicts
    its expectation, 0.5, and 'symlog' a fraction of it; an unknown readout is named."""
    model = tiny(reward_readout=readout)
    model.optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        batch = make_batch(batch=8, steps=10)
        batch["image"].zero_()
        batch["vector"].zero_()
        batch["reward"] = 10.0 * (torch.rand(8, 10, generator=g) < 0.05).float()
        model.update(batch)
    with torch.no_grad():
        _, _, post = model.loss_and_states(batch)
        predicted = model.reward(model.rssm.feat(post)).mean().item()
    assert low < predicted < high, predicted
    with pytest.raises(ValueError, match="reward_readout must be 'symlog' or 'raw'"):
        tiny(reward_readout="mean")
