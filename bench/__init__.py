"""Serving benchmark: the model alone vs this service vs TorchServe (``python -m bench``, ``make bench``).

Modules: ``assets`` (model file, labels, JPEG photos), ``model_alone`` (the in-process ceiling),
``loadgen`` (locust in its own process), ``servers`` / ``torchserve`` (start, probe, RSS, stop),
``runner`` (one run, target after target) and ``report`` (ratios, table, JSON).
"""
