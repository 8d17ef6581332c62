"""``python -m service.healthcheck``: exit 0 when ``http://127.0.0.1:$PORT/healthz`` answers 200, else 1.

The container ``HEALTHCHECK`` runs it (the slim image has no curl). ``$HEALTHCHECK_PATH`` switches the
probe, e.g. to ``/readyz``.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """Probe the local server once (timeout 4 s); return the exit status."""
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8080')}{os.environ.get('HEALTHCHECK_PATH', '/healthz')}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
