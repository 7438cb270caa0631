"""Configs: presets stack left to right, dotted overrides, validation messages, the saved config."""

import pytest
import yaml

from forethought.config import (
    Config,
    ConfigError,
    available_presets,
    describe_fields,
    load_config,
    parse_override,
    save_config,
)


def test_defaults_are_valid_and_derive_the_run_folder():
    config = load_config()
    assert config.env.id == "forethought/PinPadVector3-v0"
    assert config.run.dir == "runs/forethought-PinPadVector3-v0-seed0"


def test_presets_stack_left_to_right(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text("env: {id: forethought/KeyDoor-v0, action_repeat: 2}\neval: {episodes: 7}\n")
    second = tmp_path / "second.yaml"
    second.write_text("env: {action_repeat: 3}\n")
    config = load_config([str(first), str(second)])
    assert (config.env.id, config.env.action_repeat, config.eval.episodes) == ("forethought/KeyDoor-v0", 3, 7)
    config = load_config([str(second), str(first)])
    assert config.env.action_repeat == 2


def test_a_preset_extends_others_first(tmp_path):
    (tmp_path / "base.yaml").write_text("env: {id: forethought/KeyDoor-v0, action_repeat: 2}\neval: {episodes: 7}\n")
    (tmp_path / "child.yaml").write_text(f"extends: [{tmp_path / 'base.yaml'}, debug]\nenv: {{action_repeat: 3}}\n")
    config = load_config([str(tmp_path / "child.yaml")])
    assert (config.env.id, config.env.action_repeat, config.eval.episodes) == ("forethought/KeyDoor-v0", 3, 2)
    (tmp_path / "loop.yaml").write_text(f"extends: {tmp_path / 'loop2.yaml'}\n")
    (tmp_path / "loop2.yaml").write_text(f"extends: [{tmp_path / 'loop.yaml'}]\n")
    with pytest.raises(ConfigError, match=r"presets extend each other in a loop: .*loop\.yaml -> .*loop2\.yaml -> "):
        load_config([str(tmp_path / "loop.yaml")])
    (tmp_path / "bad.yaml").write_text("extends: {a: 1}\n")
    with pytest.raises(ConfigError, match=r"'extends' in preset .* must be a preset name or a list of them"):
        load_config([str(tmp_path / "bad.yaml")])


def test_shipped_presets_load_and_debug_shrinks_budgets():
    for name in available_presets():
        load_config([name])
    config = load_config(["keydoor", "debug"])
    assert config.env.id == "forethought/KeyDoor-v0"
    assert config.eval.episodes == 2 and config.env.time_limit == 200


def test_overrides_win_over_presets_and_parse_yaml_values():
    config = load_config(["debug"], ["eval.episodes=5", "env.image_size=[32, 48]", "env.options={size: 10}",
                                     "env.id=tests.toy_envs:SpaceEnv", "eval.video=true"])
    assert config.eval.episodes == 5
    assert config.env.image_size == (32, 48)
    assert config.env.options == {"size": 10}
    assert config.env.id == "tests.toy_envs:SpaceEnv"
    assert config.eval.video is True


def test_parse_override_nests_dotted_keys():
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}
    assert parse_override("run.dir=") == {"run": {"dir": ""}}


@pytest.mark.parametrize("text", ["episodes", "=3", "eval..episodes=3"])
def test_malformed_override_says_the_form(text):
    with pytest.raises(ConfigError, match=r"section\.field=value"):
        load_config([], [text])


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ConfigError) as error:
        load_config([], ["eval.episods=3"])
    assert str(error.value) == (
        "unknown config key 'eval.episods'; valid keys in 'eval': episodes, policy, step, workers, video, "
        "video_format, video_fps"
    )
    with pytest.raises(ConfigError, match="valid keys at the top level: env, agent, train, scale, eval, run"):
        load_config([], ["trian.steps=3"])


@pytest.mark.parametrize(
    ("override", "field", "accepted"),
    [
        ("eval.episodes=0", "eval.episodes", "greater than 0"),
        ("eval.episodes=many", "eval.episodes", "valid integer"),
        ("eval.video_format=avi", "eval.video_format", "'mp4' or 'gif'"),
        ("env.time_limit=-1", "env.time_limit", "greater than or equal to 0"),
        ("env.image_size=[64]", "env.image_size", "too few items"),
        ("env.image_size=[64, -2]", "env.image_size", "greater than 0 (item 1)"),
        ("scale.learner_threads=fast", "scale.learner_threads", "valid integer, unable to parse string as an "
                                                                "integer, or 'auto'"),
        ("scale.learner_threads=-1", "scale.learner_threads", "greater than or equal to 0, or 'auto'"),
    ],
)
def test_bad_value_names_field_value_and_what_is_accepted(override, field, accepted):
    with pytest.raises(ConfigError) as error:
        load_config([], [override])
    message = str(error.value)
    assert f"config field '{field}'" in message and accepted in message
    assert repr(yaml.safe_load(override.split("=", 1)[1])) in message


def test_a_section_cannot_be_replaced_by_a_value():
    with pytest.raises(ConfigError, match="is a section"):
        load_config([], ["eval=3"])


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"available presets: .*debug"):
        load_config(["nope"])


def test_bad_preset_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("env: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([str(broken)])
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config([str(scalar)])


def test_config_is_frozen():
    config = load_config()
    with pytest.raises(ValueError):
        config.eval.episodes = 3  # type: ignore[misc]


def test_saved_config_round_trips(tmp_path):
    config = load_config(["keydoor"], ["env.options={size: 9}", "run.seed=4"])
    save_config(config, tmp_path / "config.yaml")
    again = Config.model_validate(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert again == config


def test_every_field_is_documented():
    for name, _, doc in describe_fields():
        assert doc, f"config field {name} has no docstring"


def test_numbers_in_exponent_form_are_numbers_and_agent_overrides_of_the_wrong_type_are_refused():
    from forethought.config import ConfigError, parse_override
    from forethought.loading import agent_config

    assert parse_override("agent.actor_critic.actor_lr=3e-4") == {"agent": {"actor_critic": {"actor_lr": 3e-4}}}
    config = load_config(["cartpole"], ["agent.actor_critic.actor_lr=3e-4", "agent.world_model.units=64"])
    assert agent_config(config).actor_critic.actor_lr == 3e-4
    with pytest.raises(ConfigError, match=r"bad value 'fast' for config field 'agent.actor_critic.actor_lr': "
                                          r"expected a float"):
        agent_config(load_config(["cartpole"], ["agent.actor_critic.actor_lr=fast"]))
    with pytest.raises(ConfigError, match=r"'agent.world_model.units': expected an int"):
        agent_config(load_config(["cartpole"], ["agent.world_model.units=1.5"]))


def test_actor_gradients_are_chosen_by_name_and_dynamics_is_the_flat_agents_only():
    from forethought.config import ConfigError
    from forethought.loading import agent_config

    assert agent_config(load_config(["pendulum"], [])).actor_critic.actor_grad == "auto"
    with pytest.raises(ConfigError, match="actor_grad must be 'auto', 'reinforce' or 'dynamics', got 'pathwise'"):
        agent_config(load_config(["pendulum"], ["agent.actor_critic.actor_grad=pathwise"]))
    with pytest.raises(ConfigError, match="'dynamics' is implemented for the flat agent only"):
        agent_config(load_config(["director"], ["agent.actor_critic.actor_grad=dynamics"]))


def test_the_planner_preset_builds_its_config_and_its_sections_are_checked():
    from agents.planner import PlannerConfig
    from forethought.config import ConfigError
    from forethought.loading import agent_config

    config = agent_config(load_config(["keychain_vector_planner"], ["agent.planner.samples=32",
                                                                   "agent.manager.critic_lr=1e-3"]))
    assert isinstance(config, PlannerConfig) and config.samples == 32 and config.value.critic_lr == 1e-3
    assert config.worker.entropy == 3e-3 and config.world_model.units == 128  # planner.yaml over the task preset
    with pytest.raises(ConfigError, match=r"key 'agent\.planner\.sample'; valid keys in 'agent\.planner'"):
        agent_config(load_config(["planner"], ["agent.planner.sample=3"]))
    with pytest.raises(ConfigError, match=r"agent\.planner applies to agent\.name=planner only; agent\.name is dir"):
        agent_config(load_config(["director"], ["agent.planner.samples=3"]))
    with pytest.raises(ConfigError, match=r"bad value 'many' for config field 'agent.planner.samples'"):
        agent_config(load_config(["planner"], ["agent.planner.samples=many"]))
    with pytest.raises(ConfigError, match=r"elites \(8\) cannot exceed samples \(4\)"):
        agent_config(load_config(["planner"], ["agent.planner.samples=4"]))


@pytest.mark.parametrize("override", ["agent.world_model.deter=-1", "agent.world_model.stoch=0",
                                      "agent.actor_critic.units=0", "agent.world_model.blocks=3"])
def test_bad_network_sizes_are_refused_in_one_sentence(override):
    from forethought.loading import agent_config

    config = load_config(["keydoor_vector"], [override])
    with pytest.raises(ConfigError, match=r"bad agent override: .*(positive|at least|split evenly)"):
        agent_config(config)
