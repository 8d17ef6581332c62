"""Fixtures for the delivery tests: the service tests' seeded model and labels (made once per session)."""

from tests.service.conftest import eager_model, labels_file, model_dir, model_files, photos  # noqa: F401
