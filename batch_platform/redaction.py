"""Secrets out of what is shown: a URL's password and secret-looking settings as `***`.

One place for every message that names a connection (a source database, a Spark Connect
server), so a token or password in a URL never reaches a log line or a step's error.
"""

from __future__ import annotations

import re

_USERINFO_PASSWORD = re.compile(r"(://[^/?#@:]*:)[^/?#@]*@")
_SECRET_SETTING = re.compile(
    r"\b(\w*(?:password|passwd|pwd|token|secret|key)\w*)(\s*=\s*)[^&\s]+", re.I
)


def redact_url(url: str) -> str:
    """The URL with its password and any secret-looking setting replaced by `***`.

    Works on text rather than a parsed URL so that even a malformed URL or a libpq
    `key=value` string is redacted instead of raising or passing through.
    """
    url = _USERINFO_PASSWORD.sub(r"\1***@", url)
    return _SECRET_SETTING.sub(r"\1\2***", url)
