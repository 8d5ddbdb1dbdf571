"""Drive a browser login through Envoy and the test IdP with plain HTTP.

One requests.Session plays the browser: it keeps cookies (for Envoy and for
the IdP alike, as a browser does: cookies ignore ports) and never follows
redirects by itself, so every step can be inspected or tampered with.

    result = login(stack, "/some/page?x=1", user="alice")
    result.authorize_response   # Envoy's 302 to the IdP
    result.callback_url         # http://127.0.0.1:<envoy>/oauth2/callback?code&state&iss
    result.callback_response    # Envoy's answer to the callback
    page = result.follow()      # GET the callback's Location through Envoy

Lower-level pieces: start_login(), complete_at_idp(), call_callback().

The IdP's dev interactions (oidc-provider 9.13.3) go, for a fresh browser:
  GET /auth?...              -> 303 /interaction/<uid>
  GET /interaction/<uid>     -> 200 login form, POST to /interaction/<uid>
                                fields prompt=login, login=<user>, password=<any>
  POST /interaction/<uid>    -> 303 /auth/<uid>
  GET /auth/<uid>            -> 303 /interaction/<uid2>
  GET /interaction/<uid2>    -> 200 consent form, POST prompt=consent
  POST /interaction/<uid2>   -> 303 /auth/<uid2>
  GET /auth/<uid2>           -> 303 <redirect_uri>?code=..&state=..&iss=..
A browser that already has an IdP session (same requests.Session) skips the
login form (and the consent once granted): the driver follows whatever
forms come, reading the action and fields from the HTML. The "[ Cancel ]"
link (GET /interaction/<uid>/abort) ends with error=access_denied.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from http_util import cookies_from_response, set_cookie_headers

if TYPE_CHECKING:
    from stack import Stack

BROWSER_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "User-Agent": "oidc-edge-e2e/1.0 (test browser)",
}


class LoginError(AssertionError):
    """A login step did not go as a login should."""


def new_browser() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers.update(BROWSER_HEADERS)
    return s


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def query_params(url: str) -> dict[str, str]:
    """Query parameters of `url`, first value of each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def _describe(resp: requests.Response) -> str:
    body = resp.text[:600] if resp.content else ""
    return f"{resp.request.method} {resp.url} -> {resp.status_code} Location={resp.headers.get('Location')!r}\n{body}"


# ------------------------------------------------------------- HTML forms --


@dataclass
class Form:
    action: str
    method: str
    attrs: dict[str, str]
    inputs: list[dict[str, str]] = field(default_factory=list)
    buttons: list[dict[str, str]] = field(default_factory=list)

    def field_names(self) -> set[str]:
        return {i.get("name", "") for i in self.inputs}


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []
        self._in_form: Form | None = None
        self._link: str | None = None
        self._link_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._in_form = Form(action=a.get("action", ""), method=a.get("method", "get").lower(), attrs=a)
            self.forms.append(self._in_form)
        elif tag == "input":
            form = self._form_for(a)
            if form is not None:
                form.inputs.append(a)
        elif tag == "button":
            form = self._form_for(a)
            if form is not None:
                form.buttons.append(a)
        elif tag == "a" and "href" in a:
            self._link = a["href"]
            self._link_text = ""

    def _form_for(self, a: dict[str, str]) -> Form | None:
        if a.get("form"):
            for f in self.forms:
                if f.attrs.get("id") == a["form"]:
                    return f
        return self._in_form

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link, self._link_text.strip()))
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._link is not None:
            self._link_text += data


def parse_html(text: str) -> _FormParser:
    p = _FormParser()
    p.feed(text)
    p.close()
    return p


# ------------------------------------------------------------------ steps --


@dataclass
class LoginStart:
    session: requests.Session
    response: requests.Response  # Envoy's answer to the protected URL
    url: str  # the protected URL asked for

    @property
    def authorize_url(self) -> str:
        return self.response.headers.get("Location", "")

    @property
    def params(self) -> dict[str, str]:
        return query_params(self.authorize_url)

    @property
    def state(self) -> str | None:
        return self.params.get("state")


@dataclass
class IdpResult:
    callback_url: str
    responses: list[requests.Response]

    @property
    def params(self) -> dict[str, str]:
        return query_params(self.callback_url)


@dataclass
class LoginResult:
    stack: "Stack"
    session: requests.Session
    start: LoginStart
    idp: IdpResult
    callback_response: requests.Response

    @property
    def authorize_response(self) -> requests.Response:
        return self.start.response

    @property
    def authorize_url(self) -> str:
        return self.start.authorize_url

    @property
    def callback_url(self) -> str:
        return self.idp.callback_url

    @property
    def location(self) -> str:
        return self.callback_response.headers.get("Location", "")

    def follow(self, headers: dict | None = None) -> requests.Response:
        """GET the callback response's Location through Envoy (no redirects)."""
        target = urljoin(self.stack.url("/"), self.location)
        return self.session.get(target, headers=headers, allow_redirects=False, timeout=10)


def start_login(
    stack: "Stack",
    path: str = "/",
    session: requests.Session | None = None,
    headers: dict | None = None,
    check: bool = True,
) -> LoginStart:
    """GET a protected `path` through Envoy as a browser. With `check`, the
    answer must be a redirect to the IdP's authorization_endpoint.

    `path` is sent verbatim on the wire (http.client), so paths such as
    `//evil.example/x` or `/\\evil.example` reach Envoy unchanged; cookies are
    taken from and stored into `session`."""
    session = session or new_browser()
    resp = raw_get(session, stack.url("/"), path, headers=headers)
    start = LoginStart(session=session, response=resp, url=stack.url(path))
    if check:
        endpoint = stack.discovery.get("authorization_endpoint", "")
        if resp.status_code != 302 or not start.authorize_url.startswith(endpoint + "?"):
            raise LoginError(f"expected 302 to {endpoint}?...; got:\n{_describe(resp)}")
    return start


def complete_at_idp(
    session: requests.Session,
    authorize_url: str,
    user: str = "alice",
    password: str = "x",
    abort: bool = False,
    max_steps: int = 16,
) -> IdpResult:
    """Follow the IdP from `authorize_url` until it redirects off the IdP
    (to the relying party's callback). Fills the login form with `user` and
    `password`, accepts consent; with `abort`, clicks "[ Cancel ]" at the
    first interaction page instead (ends in error=access_denied)."""
    idp_origin = _origin(authorize_url)
    responses: list[requests.Response] = []
    resp = session.get(authorize_url, allow_redirects=False, timeout=10)
    for _ in range(max_steps):
        responses.append(resp)
        if resp.is_redirect or resp.status_code in (301, 302, 303, 307, 308):
            location = urljoin(resp.url, resp.headers.get("Location", ""))
            if _origin(location) != idp_origin:
                return IdpResult(callback_url=location, responses=responses)
            resp = session.get(location, allow_redirects=False, timeout=10)
            continue
        if resp.status_code == 200 and "html" in resp.headers.get("Content-Type", ""):
            page = parse_html(resp.text)
            if abort:
                cancel = [href for href, _text in page.links if href.rstrip("/").endswith("/abort")]
                if not cancel:
                    raise LoginError(f"no abort link on the IdP page:\n{_describe(resp)}")
                resp = session.get(urljoin(resp.url, cancel[0]), allow_redirects=False, timeout=10)
                continue
            form = _pick_form(page.forms)
            if form is None:
                raise LoginError(f"IdP page without a usable form:\n{_describe(resp)}")
            data = _fill(form, user, password)
            target = urljoin(resp.url, form.action or resp.url)
            if form.method == "post":
                resp = session.post(target, data=data, allow_redirects=False, timeout=10)
            else:
                resp = session.get(target, params=data, allow_redirects=False, timeout=10)
            continue
        raise LoginError(f"unexpected IdP response:\n{_describe(resp)}")
    raise LoginError(f"IdP interaction did not end after {max_steps} steps")


def _pick_form(forms: list[Form]) -> Form | None:
    for f in forms:
        names = f.field_names()
        if "login" in names or "prompt" in names or "xsrf" in names:
            return f
    return forms[0] if forms else None


def _fill(form: Form, user: str, password: str) -> dict[str, str]:
    data: dict[str, str] = {}
    for i in form.inputs:
        name = i.get("name")
        if not name:
            continue
        kind = i.get("type", "text").lower()
        if name == "login":
            data[name] = user
        elif kind == "password" or name == "password":
            data[name] = password
        elif kind in ("checkbox", "radio"):
            if "checked" in i:
                data[name] = i.get("value", "on")
        else:
            data[name] = i.get("value", "")
    # A named submit button (e.g. the IdP's logout "yes") is part of the form.
    for b in form.buttons:
        if b.get("name") and b.get("type", "submit") == "submit":
            data.setdefault(b["name"], b.get("value", ""))
            break
    return data


def call_callback(
    session: requests.Session,
    callback_url: str,
    headers: dict | None = None,
) -> requests.Response:
    """GET the callback URL (through Envoy) with the session's cookies."""
    return session.get(callback_url, headers=headers, allow_redirects=False, timeout=10)


def login(
    stack: "Stack",
    path: str = "/",
    user: str = "alice",
    password: str = "x",
    session: requests.Session | None = None,
    headers: dict | None = None,
) -> LoginResult:
    """The whole browser login: protected URL -> IdP -> callback through Envoy.
    Returns every step; does not judge the callback response."""
    start = start_login(stack, path, session=session, headers=headers)
    idp = complete_at_idp(start.session, start.authorize_url, user=user, password=password)
    if not idp.callback_url.startswith(stack.redirect_uri.split("?")[0]):
        raise LoginError(f"IdP redirected to {idp.callback_url!r}, not to {stack.redirect_uri}")
    cb = call_callback(start.session, idp.callback_url)
    return LoginResult(stack=stack, session=start.session, start=start, idp=idp, callback_response=cb)


def idp_logout(session: requests.Session, end_session_url: str, max_steps: int = 8) -> IdpResult:
    """Follow an RP-initiated logout at the IdP (GET end_session_endpoint
    URL, confirm the sign-out form) until it redirects off the IdP."""
    return complete_at_idp(session, end_session_url, max_steps=max_steps)


# ----------------------------------------------------------- raw requests --


class _RawResponse(requests.Response):
    pass


class _OriginalResponse:
    """What requests.cookies.extract_cookies_to_jar reads from a response."""

    def __init__(self, raw: http.client.HTTPResponse) -> None:
        self._original_response = raw


def raw_get(
    session: requests.Session,
    base_url: str,
    path: str,
    headers: dict | None = None,
    method: str = "GET",
) -> requests.Response:
    """Send `method path` verbatim (no URL normalisation) to the origin of
    `base_url` with http.client, using and updating `session`'s cookies.
    Returns a requests.Response (no redirects followed)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    req_headers = {k: v for k, v in session.headers.items()}
    req_headers.update(headers or {})
    # Cookies the session would send for this URL (cookie paths match on
    # the URL as requests would encode it).
    try:
        prepared = requests.Request("GET", f"{parts.scheme}://{parts.netloc}{path}").prepare()
    except (requests.RequestException, ValueError):
        prepared = requests.Request("GET", f"{parts.scheme}://{parts.netloc}/").prepare()
    cookie_header = requests.cookies.get_cookie_header(session.cookies, prepared)
    if cookie_header and not any(k.lower() == "cookie" for k in req_headers):
        req_headers["Cookie"] = cookie_header
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", parts.netloc)
        for k, v in req_headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        raw = conn.getresponse()
        body = raw.read()
        resp = _RawResponse()
        resp.status_code = raw.status
        resp.reason = raw.reason
        resp._content = body  # noqa: SLF001 - building a Response by hand
        resp.headers = requests.structures.CaseInsensitiveDict()
        resp.raw_set_cookies = raw.msg.get_all("Set-Cookie") or []  # type: ignore[attr-defined]
        for k, v in raw.getheaders():
            if k.lower() in resp.headers:
                resp.headers[k] = resp.headers[k] + ", " + v
            else:
                resp.headers[k] = v
        resp.url = f"{parts.scheme}://{parts.netloc}{path}"
        resp.request = requests.Request(method, resp.url, headers=req_headers).prepare()
        resp.encoding = requests.utils.get_encoding_from_headers(resp.headers)
    finally:
        conn.close()
    # Store Set-Cookie exactly as requests does for its own responses.
    requests.cookies.extract_cookies_to_jar(session.cookies, resp.request, _OriginalResponse(raw))
    return resp


__all__ = [
    "BROWSER_HEADERS",
    "Form",
    "IdpResult",
    "LoginError",
    "LoginResult",
    "LoginStart",
    "call_callback",
    "complete_at_idp",
    "cookies_from_response",
    "idp_logout",
    "login",
    "new_browser",
    "parse_html",
    "query_params",
    "raw_get",
    "set_cookie_headers",
    "start_login",
]
