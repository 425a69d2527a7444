"""Web page and JSON API for a checkpoint (`ugn serve`): FastAPI app, upload safety limits, uvicorn runner.

Imports fastapi/uvicorn: import this package only where serving is wanted (not from `ugn --help`).
"""

from unifiedgender.serve.app import create_app
from unifiedgender.serve.limits import ServeLimits
from unifiedgender.serve.server import BackgroundServer, run_server

__all__ = ["BackgroundServer", "ServeLimits", "create_app", "run_server"]
