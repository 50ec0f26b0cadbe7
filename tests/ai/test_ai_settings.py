"""AISettings: defaults, validation, and keys kept out of repr."""

from __future__ import annotations

import dataclasses

import pytest

from ai.settings import AISettings


def test_defaults() -> None:
    settings = AISettings()
    assert settings.system_prompt == "You are a helpful assistant."
    assert (settings.scripted_tokens, settings.scripted_delay_ms) == (40, 15.0)
    assert (settings.request_timeout_s, settings.first_token_timeout_s) == (60.0, 30.0)
    assert (settings.max_retries, settings.context_budget_tokens) == (2, 8000)
    assert settings.max_reply_tokens == 2048
    assert dict(settings.provider_overrides) == {}
    assert not settings.openai_configured and not settings.anthropic_configured


def test_keys_never_appear_in_repr() -> None:
    settings = AISettings(openai_api_key="sk-VERYSECRET1", anthropic_api_key="sk-ant-VERYSECRET2")
    text = repr(settings) + str(settings)
    assert "VERYSECRET" not in text
    assert "openai_base_url" in text


def test_frozen_and_overrides_are_a_private_copy() -> None:
    overrides = {"llama": "openai"}
    settings = AISettings(provider_overrides=overrides)
    overrides["llama"] = "scripted"
    assert settings.provider_overrides["llama"] == "openai"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_retries = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"provider_overrides": {"llama": "ollama"}},
        {"provider_overrides": {"": "openai"}},
        {"max_retries": -1},
        {"request_timeout_s": 0},
        {"scripted_tokens": -1},
        {"scripted_delay_ms": -0.5},
        {"context_budget_tokens": 0},
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AISettings(**changes)  # type: ignore[arg-type]
