"""Image-classification inference service: FastAPI + PyTorch (torchvision).

``service.app.create_app()`` builds the ASGI app; ``python -m service`` serves it with uvicorn.
Importing this package loads no model: the app's lifespan does that.
"""

__version__ = "0.1.0"
