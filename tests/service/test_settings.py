"""service.settings: environment variables, defaults, parsing and one-line validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings, available_cpus, describe_error


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults():
    settings = Settings()
    assert settings.model_path is None and settings.model_arch == "resnet50"
    assert settings.model_weights == "DEFAULT"
    assert (settings.resize_size, settings.crop_size) == (256, 224)
    assert settings.norm_mean == (0.485, 0.456, 0.406)  # torchvision ImageNet normalisation
    assert settings.max_body_bytes == 20 * 1024 * 1024
    assert settings.torch_threads == available_cpus()
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.resolved_model_name == "resnet50"
    assert settings.uses_default_preprocessing()


def test_environment_variables_without_prefix(monkeypatch):
    env = {"MODEL_PATH": "/m/resnet.pt2", "MODEL_LABELS": "/m/labels.txt", "MODEL_VERSION": "3",
           "NORM_MEAN": "0.5, 0.4, 0.3", "NORM_STD": "[0.2, 0.2, 0.2]", "MAX_BATCH_SIZE": "32",
           "MAX_BATCH_DELAY_MS": "2.5", "TORCH_THREADS": "3", "LOG_LEVEL": "DEBUG", "CROP_SIZE": "192"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.model_path == Path("/m/resnet.pt2")
    assert settings.resolved_model_name == "resnet"  # the file's stem
    assert settings.norm_mean == (0.5, 0.4, 0.3) and settings.norm_std == (0.2, 0.2, 0.2)
    assert settings.max_batch_size == 32 and settings.max_batch_delay_ms == 2.5
    assert settings.torch_threads == 3 and settings.log_level == "debug"
    assert not settings.uses_default_preprocessing()


def test_empty_model_path_means_unset(monkeypatch):
    monkeypatch.setenv("MODEL_PATH", "")  # what the Dockerfile sets when no MODEL_FILE is baked in
    monkeypatch.setenv("MODEL_NAME", "cats")
    settings = Settings()
    assert settings.model_path is None and settings.resolved_model_name == "cats"


@pytest.mark.parametrize(("name", "value"), [
    ("MAX_BATCH_SIZE", "0"), ("MAX_BATCH_SIZE", "many"), ("PORT", "70000"), ("NORM_MEAN", "1,2"),
    ("NORM_STD", "1,0,1"), ("LOG_LEVEL", "loud"), ("MODEL_NAME", "has space"), ("REQUEST_TIMEOUT_MS", "0"),
])
def test_invalid_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    message = describe_error(info.value)
    assert message.startswith(f"invalid setting {name}=")
    assert "\n" not in message


def test_a_secret_is_never_echoed(monkeypatch):
    from pydantic import BaseModel, SecretStr

    class WithKey(BaseModel):
        api_key: SecretStr

    with pytest.raises(ValidationError) as info:
        WithKey(api_key=12345)  # not a string
    message = describe_error(info.value)
    assert "API_KEY=<hidden>" in message and "12345" not in message
