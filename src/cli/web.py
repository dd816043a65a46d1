"""``fastjobs web``: serve the dashboard with uvicorn (``pip install "fastjobs[web]"``).

Example::

    fastjobs web myproject.jobs:app --port 8080        # prints the URL and a generated token
    FASTJOBS_WEB_TOKEN=s3cret fastjobs web myproject.jobs:app --host 0.0.0.0

Binds 127.0.0.1 unless ``--host`` says otherwise. With no ``--token`` (nor
``FASTJOBS_WEB_TOKEN``) a token is generated and printed once, apart from the URL: it is
entered in the login form, never put in a URL.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from ._common import Commands, Formatter, UsageError, add_common, load_app, point_app

TOKEN_ENV = "FASTJOBS_WEB_TOKEN"


def add_parser(sub: Commands) -> None:
    w = sub.add_parser("web", help="serve the web dashboard (pip install 'fastjobs[web]')", formatter_class=Formatter,
                       description="Serve the web dashboard and its REST API with uvicorn until Ctrl-C. Access "
                       f"needs a token: --token, else {TOKEN_ENV}, else one is generated and printed.")
    add_common(w, json_output=False)
    w.add_argument("--host", default="127.0.0.1", help="the address to bind")
    w.add_argument("--port", type=int, default=8080, help="the port to bind")
    w.add_argument("--token", default=None, metavar="T",
                   help=f"the admin token (default: {TOKEN_ENV}, else a generated one, printed); a command "
                   f"line shows in ps: prefer {TOKEN_ENV}")
    w.add_argument("--read-only-token", default=None, metavar="T",
                   help="a token that sees everything and changes nothing")
    w.set_defaults(func=cmd_web)


def cmd_web(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..web import create_app
    except ImportError as exc:
        raise UsageError(f'the dashboard needs its extra: pip install "fastjobs[web]" ({exc})') from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, not {args.port}")
    app = point_app(load_app(args.app), args.url, "web")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    generated = token is None
    if token is None:
        token = secrets.token_urlsafe(24)
    if args.read_only_token is not None and args.read_only_token in ("", token):
        raise UsageError("--read-only-token must be non-empty and differ from the admin token")
    web = create_app(app, token=token, read_only_token=args.read_only_token)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"fastjobs dashboard: http://{host}:{args.port}/", flush=True)
    if generated:
        print(f"token (enter it in the login form; set --token or {TOKEN_ENV} to choose one): {token}", flush=True)
    sys.stdout.flush()
    uvicorn.run(web, host=args.host, port=args.port, log_level=args.log_level.lower(), proxy_headers=False)
    return 0
