"""HTML of the login and error pages: no script at all, no inline style, so the pages
run under a strict Content-Security-Policy (``default-src 'none'; style-src 'self'``).
Every interpolated value is HTML-escaped."""

from __future__ import annotations

from html import escape

__all__ = ["CSS", "error_page", "login_page", "message_page"]

CSS = b"""\
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;color:#222}
main{max-width:22rem;margin:10vh auto;background:#fff;padding:2rem;border-radius:8px;
box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.3rem;margin-top:0}
label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.2rem;width:100%;padding:.6rem;font-size:1rem;background:#0b5cad;color:#fff;
border:0;border-radius:4px;cursor:pointer}
.error{color:#a40000;background:#fdecea;padding:.5rem;border-radius:4px}
.note{color:#555;font-size:.9rem}
"""


def _page(title: str, body: str, css_href: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><link rel="stylesheet" href="{escape(css_href)}"></head>'
        f"<body><main>{body}</main></body></html>\n"
    ).encode()


def login_page(
    *,
    action: str,
    css_href: str,
    csrf: str,
    request_id: str = "",
    next_path: str = "",
    client_id: str = "",
    username: str = "",
    error: str = "",
) -> bytes:
    """The username/password form (POST to ``action``)."""
    err = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    who = f'<p class="note">Sign in to continue to <b>{escape(client_id)}</b>.</p>' if client_id else ""
    hidden = f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
    if request_id:
        hidden += f'<input type="hidden" name="request" value="{escape(request_id)}">'
    if next_path:
        hidden += f'<input type="hidden" name="next" value="{escape(next_path)}">'
    body = (
        f"<h1>Sign in</h1>{who}{err}"
        f'<form method="post" action="{escape(action)}">{hidden}'
        '<label for="username">Username</label>'
        f'<input type="text" id="username" name="username" value="{escape(username)}" '
        'autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>'
    )
    return _page("Sign in", body, css_href)


def error_page(title: str, detail: str, *, css_href: str) -> bytes:
    return _page(title, f'<h1>{escape(title)}</h1><p class="error">{escape(detail)}</p>', css_href)


def message_page(title: str, detail: str, *, css_href: str) -> bytes:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>", css_href)
