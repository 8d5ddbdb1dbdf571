//! The request as the core sees it: headers in, client kind (browser, API, WebSocket) and credentials out.

use std::borrow::Cow;
use std::ops::Range;

use crate::session::cookies;

/// An incoming request's headers, names lower-cased, values as raw bytes: a client may
/// send any byte, and the core must not trip over a non-UTF-8 one.
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    pub method: String,
    /// `https` or `http`: `X-Forwarded-Proto` when it says one of those, else `:scheme`.
    pub scheme: String,
    pub authority: String,
    /// Path and query as sent (`:path`).
    pub path: String,
    /// Every header's name and value, as ranges into `raw`: one buffer for the whole
    /// request, however many headers it has.
    raw: Vec<u8>,
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// `Cookie` parsed on first use: several steps of one request read it.
    cookies: std::cell::OnceCell<cookies::Parsed>,
}

/// Who is asking, which decides between a redirect to the IdP and a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// A top-level navigation that can follow a redirect and show a login page.
    Browser,
    /// Anything else: XHR/fetch, API clients, non-GET methods.
    Api,
    /// A WebSocket upgrade: it cannot follow a redirect either.
    WebSocket,
}

impl RequestView {
    pub fn from_headers(headers: Vec<(String, Vec<u8>)>) -> RequestView {
        let mut raw = Vec::new();
        let mut fields = Vec::with_capacity(headers.len());
        for (name, value) in &headers {
            let name_at = raw.len();
            raw.extend_from_slice(name.as_bytes());
            let value_at = raw.len();
            raw.extend_from_slice(value);
            fields.push((name_at..value_at, value_at..raw.len()));
        }
        RequestView::from_fields(raw, fields)
    }

    /// Headers as proxy-wasm serializes a header map (what the host's
    /// `proxy_get_header_map_pairs` returns), taken over without a copy per header:
    /// a little-endian u32 count, each pair's name and value lengths (u32 each), then
    /// each name and value followed by a NUL. A malformed map reads as no headers.
    pub fn from_serialized_map(raw: Vec<u8>) -> RequestView {
        let fields = serialized_map_fields(&raw).unwrap_or_default();
        RequestView::from_fields(raw, fields)
    }

    fn from_fields(mut raw: Vec<u8>, fields: Vec<(Range<usize>, Range<usize>)>) -> RequestView {
        // Envoy hands names over lower-cased already; this only guards other hosts, in place.
        for (name, _) in &fields {
            if let Some(name) = raw.get_mut(name.clone()) {
                name.make_ascii_lowercase();
            }
        }
        let mut view = RequestView { raw, fields, ..RequestView::default() };
        let text = |name: &str| -> String { view.header_str(name).unwrap_or_default().to_string() };
        let forwarded = text("x-forwarded-proto");
        let forwarded = forwarded.split(',').next().unwrap_or_default().trim().to_ascii_lowercase();
        let scheme = if forwarded == "https" || forwarded == "http" { forwarded } else { text(":scheme").to_ascii_lowercase() };
        let (method, authority, path) = (text(":method"), text(":authority"), text(":path"));
        view.method = method;
        view.scheme = scheme;
        view.authority = authority;
        view.path = path;
        view
    }

    /// Every value of the header `name`, in order. Lookups run a dozen times per request:
    /// names are compared by length first, and only a match's value is sliced.
    fn values<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        let name = name.as_bytes();
        self.fields
            .iter()
            .filter(move |(n, _)| n.len() == name.len() && self.raw.get(n.clone()) == Some(name))
            .filter_map(|(_, v)| self.raw.get(v.clone()))
    }

    /// Every header name the request carries, in order (repeated names repeat).
    pub fn header_names(&self) -> impl Iterator<Item = &[u8]> {
        self.fields.iter().filter_map(|(n, _)| self.raw.get(n.clone()))
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.values(name).next()
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of a header (HTTP/2 may split `cookie` into several).
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.values(name).collect()
    }

    /// The request's cookies, in order (parsed once).
    pub fn cookies(&self) -> &[(String, String)] {
        &self.parsed_cookies().pairs
    }

    /// The cookies, and whether every segment of the `Cookie` headers became one of them.
    pub fn parsed_cookies(&self) -> &cookies::Parsed {
        self.cookies.get_or_init(|| cookies::parse_all(&self.header_values("cookie")))
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split_once('?').map(|(p, _)| p).unwrap_or(&self.path)
    }

    pub fn query(&self) -> &str {
        self.path.split_once('?').map(|(_, q)| q).unwrap_or("")
    }

    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 2.1).
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header_str("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        (!token.is_empty()).then_some(token)
    }

    /// Every entry of `Sec-WebSocket-Protocol`, over all its lines, trimmed; empty ones left out.
    pub fn subprotocols(&self) -> Vec<String> {
        self.values("sec-websocket-protocol")
            .flat_map(|v| String::from_utf8_lossy(v).split(',').map(|p| p.trim().to_string()).collect::<Vec<_>>())
            .filter(|p| !p.is_empty())
            .collect()
    }

    pub fn is_websocket_upgrade(&self) -> bool {
        self.header_str("upgrade").is_some_and(|u| u.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
    }

    /// A browser's top-level navigation that is not a GET, such as a form submission, outside
    /// `api_paths`: it can show a page, but a redirect to the IdP would drop what it sent.
    pub fn is_form_navigation(&self, api_paths: &[String]) -> bool {
        if matches!(self.method.as_str(), "GET" | "HEAD") || self.is_websocket_upgrade() {
            return false;
        }
        if api_paths.iter().any(|p| path_matches(self.path_only(), p)) {
            return false;
        }
        match self.header_str("sec-fetch-mode") {
            Some(mode) => {
                mode.eq_ignore_ascii_case("navigate")
                    && self.header_str("sec-fetch-dest").is_none_or(|d| matches!(d.to_ascii_lowercase().as_str(), "document" | "iframe" | "frame"))
            }
            None => {
                self.header_str("x-requested-with").is_none()
                    && self.header_str("accept").is_some_and(|a| {
                        let a = a.to_ascii_lowercase();
                        a.contains("text/html") || a.contains("application/xhtml+xml")
                    })
            }
        }
    }

    /// Decides whether a missing credential earns a redirect (browsers) or a 401.
    /// Browsers say what they are doing in `Sec-Fetch-*`; older ones are recognised by
    /// asking for HTML. Everything that is not clearly a top-level navigation is an API call.
    pub fn client_kind(&self, api_paths: &[String]) -> ClientKind {
        if self.is_websocket_upgrade() {
            return ClientKind::WebSocket;
        }
        if !matches!(self.method.as_str(), "GET" | "HEAD") {
            return ClientKind::Api;
        }
        let path = self.path_only();
        if api_paths.iter().any(|p| path_matches(path, p)) {
            return ClientKind::Api;
        }
        if self.header_str("x-requested-with").is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest")) {
            return ClientKind::Api;
        }
        if let Some(mode) = self.header_str("sec-fetch-mode") {
            if !mode.eq_ignore_ascii_case("navigate") {
                return ClientKind::Api;
            }
        }
        if let Some(dest) = self.header_str("sec-fetch-dest") {
            if !matches!(dest.to_ascii_lowercase().as_str(), "document" | "iframe" | "frame" | "embed" | "object") {
                return ClientKind::Api;
            }
        }
        // A browser navigation always asks for HTML. A client that says nothing about
        // what it accepts (no `Accept`, or only `*/*`: curl, scripts, test drivers) gets the
        // login redirect too, as oauth2-proxy and Envoy's OAuth2 filter do; one that asks
        // for something else (`application/json`, ...) is an API client.
        let accept = self.header_str("accept").unwrap_or_default().to_ascii_lowercase();
        let says_nothing = accept.split(',').all(|part| matches!(part.split(';').next().unwrap_or_default().trim(), "" | "*/*"));
        if says_nothing || accept.contains("text/html") || accept.contains("application/xhtml+xml") {
            ClientKind::Browser
        } else {
            ClientKind::Api
        }
    }
}

/// Path rules: an entry ending in `/` or `*` is a prefix (`/api/`, `/static*`), anything
/// else matches exactly or as a directory prefix (`/health` matches `/health/live`).
pub fn path_matches(path: &str, rule: &str) -> bool {
    if let Some(prefix) = rule.strip_suffix('*') {
        return path.starts_with(prefix);
    }
    if rule.ends_with('/') {
        return path.starts_with(rule);
    }
    path == rule || path.strip_prefix(rule).is_some_and(|rest| rest.starts_with('/'))
}

/// How deep percent-encoding is undone: some servers decode twice (`%252e` → `%2e` → `.`).
const DECODE_ROUNDS: usize = 3;

/// The path as a normalising application server may read it: percent-decoded (repeatedly),
/// `\` as `/`, `;parameters` dropped from each segment (Tomcat, Jetty), empty segments
/// merged and dot segments removed (RFC 3986 5.2.4). Only for matching rules, so that
/// `/public/..;/admin` meets the rules of `/admin`: what goes upstream is left as sent.
/// Case is kept: paths are case-sensitive (RFC 3986 6.2.2.1), as in Envoy's route matching.
pub fn canonical_path(path: &str) -> Cow<'_, str> {
    if !path.bytes().any(|b| matches!(b, b'%' | b'\\' | b';') || !b.is_ascii()) && !path.contains("//") && !path.contains("/.") {
        return Cow::Borrowed(path);
    }
    let mut bytes = path.as_bytes().to_vec();
    for _ in 0..DECODE_ROUNDS {
        let decoded = percent_decode_lenient(&bytes);
        if decoded == bytes {
            break;
        }
        bytes = decoded;
    }
    let bytes = overlong_separators(&bytes);
    // Fullwidth forms read as their ASCII selves under NFKC, which some servers apply.
    let text = String::from_utf8_lossy(&bytes).replace(['\\', '\u{FF0F}', '\u{FF3C}'], "/").replace('\u{FF0E}', ".");
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in text.split('/') {
        let segment = segment.split(';').next().unwrap_or_default();
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    let mut out = String::with_capacity(text.len());
    for name in &segments {
        out.push('/');
        out.push_str(name);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// The overlong UTF-8 forms of `.`, `/` and `\` (`%c0%ae`, ...), which lenient decoders
/// still read as those characters, as the characters themselves.
fn overlong_separators(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let plain = match (b, input.get(i.saturating_add(1))) {
            (0xC0, Some(0xAE)) => Some(b'.'),
            (0xC0, Some(0xAF)) => Some(b'/'),
            (0xC1, Some(0x9C)) => Some(b'\\'),
            _ => None,
        };
        match plain {
            Some(c) => {
                out.push(c);
                i = i.saturating_add(2);
            }
            None => {
                out.push(b);
                i = i.saturating_add(1);
            }
        }
    }
    out
}

/// `%XX` → byte wherever `XX` is hex, and IIS's `%uXXXX` → the character; anything else
/// (a lone `%`) stays.
fn percent_decode_lenient(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%' && matches!(input.get(i.saturating_add(1)), Some(b'u' | b'U')) {
            let code = input.get(i.saturating_add(2)..i.saturating_add(6)).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u32::from_str_radix(h, 16).ok());
            if let Some(c) = code.and_then(char::from_u32) {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i = i.saturating_add(6);
                continue;
            }
        }
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (input.get(i.saturating_add(1)).copied().and_then(hex), input.get(i.saturating_add(2)).copied().and_then(hex)) {
                out.push(hi.saturating_mul(16).saturating_add(lo));
                i = i.saturating_add(3);
                continue;
            }
        }
        out.push(b);
        i = i.saturating_add(1);
    }
    out
}

/// A return path after login must stay on this origin: an absolute path, not `//host`
/// (scheme-relative), no backslash (browsers read `/\host` as `//host`), no control or
/// whitespace characters (browsers strip tabs and newlines, turning `/\t/host` into `//host`).
pub fn safe_return_path(candidate: &str, callback_path: &str) -> String {
    let ok = candidate.len() <= 2048
        && candidate.starts_with('/')
        && !candidate.starts_with("//")
        && !candidate.contains('\\')
        && !candidate.bytes().any(|b| b <= b' ' || b == 0x7f)
        && !candidate.to_ascii_lowercase().starts_with("/%2f")
        && !candidate.to_ascii_lowercase().starts_with("/%5c")
        && candidate.split('?').next() != Some(callback_path);
    if ok {
        candidate.to_string()
    } else {
        "/".to_string()
    }
}

/// A header map in proxy-wasm's serialized form, as the host writes it: the inverse of
/// `RequestView::from_serialized_map`, for tests, fuzz targets and benches. `None` if a
/// length does not fit the format's u32.
pub fn serialize_map(pairs: &[(&[u8], &[u8])]) -> Option<Vec<u8>> {
    let len = |n: usize| u32::try_from(n).ok().map(u32::to_le_bytes);
    let mut out = len(pairs.len())?.to_vec();
    for (name, value) in pairs {
        out.extend_from_slice(&len(name.len())?);
        out.extend_from_slice(&len(value.len())?);
    }
    for (name, value) in pairs {
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    Some(out)
}

/// Name and value ranges of a proxy-wasm serialized map (see `from_serialized_map`).
fn serialized_map_fields(raw: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
    let word = |at: usize| -> Option<usize> {
        let bytes = raw.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_le_bytes(bytes.try_into().ok()?)).ok()
    };
    let count = word(0)?;
    // Each pair takes at least 8 bytes of sizes: a count larger than that is malformed.
    if count > raw.len() / 8 {
        return None;
    }
    let mut fields = Vec::with_capacity(count);
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    for pair in 0..count {
        let sizes = pair.checked_mul(8)?.checked_add(4)?;
        let (name_len, value_len) = (word(sizes)?, word(sizes.checked_add(4)?)?);
        let name = data..data.checked_add(name_len)?;
        let value_at = name.end.checked_add(1)?;
        let value = value_at..value_at.checked_add(value_len)?;
        data = value.end.checked_add(1)?;
        if data > raw.len() {
            return None;
        }
        fields.push((name, value));
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, extra: &[(&str, &str)]) -> RequestView {
        let mut h: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), method.into()),
            (":scheme".into(), b"http".to_vec()),
            (":authority".into(), b"app.example.com".to_vec()),
            (":path".into(), path.into()),
        ];
        for (n, v) in extra {
            h.push((n.to_string(), v.as_bytes().to_vec()));
        }
        RequestView::from_headers(h)
    }

    #[test]
    fn canonical_paths_read_like_a_normalising_server() {
        // (as sent, as a normalising server may read it)
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/app.js", "/app.js"),
            ("/.well-known/x", "/.well-known/x"),
            ("//admin/x", "/admin/x"),
            ("/./admin/x", "/admin/x"),
            ("/x/../admin/x", "/admin/x"),
            ("/healthz/../secret", "/secret"),
            ("/healthz/..%2fsecret", "/secret"),
            ("/healthz/%2e%2e/secret", "/secret"),
            ("/healthz/%252e%252e/secret", "/secret"),
            ("/static/..;/secret", "/secret"),
            ("/admin;/x", "/admin/x"),
            ("/admin;jsessionid=1/x", "/admin/x"),
            ("/%61dmin/x", "/admin/x"),
            ("/admin%2fx", "/admin/x"),
            ("/%2Fadmin/x", "/admin/x"),
            ("/\\admin\\x", "/admin/x"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/../../..", "/"),
            ("/my%20file.png", "/my file.png"),
            ("/100%", "/100%"),
            ("/%zz/%4", "/%zz/%4"),
            ("/ADMIN/x", "/ADMIN/x"),
            ("/public/%c0%ae%c0%ae/admin/x", "/admin/x"),
            ("/public/%c0%ae%c0%ae%c0%afadmin", "/admin"),
            ("/public/%u002e%u002e/admin", "/admin"),
            ("/public/..%u2215x", "/public/..\u{2215}x"),
            ("/public/%ef%bc%8e%ef%bc%8e%ef%bc%8fadmin", "/admin"),
            ("/%u", "/%u"),
            ("/%u12", "/%u12"),
            ("/%uD800", "/%uD800"),
            ("/public/\u{FF0E}\u{FF0E}/admin", "/admin"),
        ];
        for (sent, read) in cases {
            assert_eq!(canonical_path(sent), read, "{sent}");
        }
        assert!(matches!(canonical_path("/plain/path.html"), Cow::Borrowed(_)), "plain paths cost no allocation");
    }

    #[test]
    fn serialized_header_map_reads_like_the_pairs() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", b"/a?b=c"),
            (b":authority", b"app.example.com"),
            (b"X-Forwarded-Proto", b"https"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=\xff"),
            (b"empty", b""),
        ];
        let raw = serialize_map(&pairs).expect("serialize");
        let from_map = RequestView::from_serialized_map(raw.clone());
        let owned = pairs.iter().map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.to_vec())).collect();
        let from_pairs = RequestView::from_headers(owned);
        for view in [&from_map, &from_pairs] {
            assert_eq!((view.method.as_str(), view.path.as_str(), view.scheme.as_str()), ("GET", "/a?b=c", "https"));
            assert_eq!(view.header("x-forwarded-proto"), Some(&b"https"[..]), "names are lower-cased");
            assert_eq!(view.header_values("cookie"), [&b"a=1"[..], &b"b=\xff"[..]]);
            assert_eq!(view.header("empty"), Some(&b""[..]));
            assert_eq!(view.header("absent"), None);
        }
        // Malformed maps read as no headers, never panic: every truncation, a count too
        // large for the buffer, a length pointing past the end.
        for cut in 0..raw.len() {
            let view = RequestView::from_serialized_map(raw.get(..cut).unwrap_or_default().to_vec());
            assert_eq!(view.header(":method"), None, "cut at {cut}");
        }
        let mut huge = raw.clone();
        huge.splice(0..4, u32::MAX.to_le_bytes());
        assert_eq!(RequestView::from_serialized_map(huge).header(":method"), None);
        let mut long = raw;
        long.splice(4..8, 1_000_000u32.to_le_bytes());
        assert_eq!(RequestView::from_serialized_map(long).header(":method"), None);
    }

    #[test]
    fn client_kind_table() {
        let html = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        let cases: Vec<(&str, Vec<(&str, &str)>, ClientKind)> = vec![
            ("GET", vec![html], ClientKind::Browser),
            ("GET", vec![html, ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")], ClientKind::Browser),
            ("GET", vec![html, ("sec-fetch-mode", "cors")], ClientKind::Api),
            ("GET", vec![html, ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "image")], ClientKind::Api),
            ("GET", vec![html, ("x-requested-with", "XMLHttpRequest")], ClientKind::Api),
            ("GET", vec![("accept", "application/json")], ClientKind::Api),
            ("GET", vec![("accept", "*/*")], ClientKind::Browser),
            ("GET", vec![("accept", "*/*;q=0.8")], ClientKind::Browser),
            ("GET", vec![], ClientKind::Browser),
            ("GET", vec![("accept", "application/json, text/plain, */*")], ClientKind::Api),
            ("GET", vec![("accept", "*/*"), ("sec-fetch-mode", "cors")], ClientKind::Api),
            ("POST", vec![html], ClientKind::Api),
            ("HEAD", vec![html], ClientKind::Browser),
            ("GET", vec![html, ("upgrade", "websocket"), ("connection", "Upgrade")], ClientKind::WebSocket),
            ("GET", vec![("upgrade", "WebSocket")], ClientKind::WebSocket),
        ];
        for (m, h, want) in cases {
            assert_eq!(req(m, "/x", &h).client_kind(&[]), want, "{m} {h:?}");
        }
        assert_eq!(req("GET", "/api/v1", &[html]).client_kind(&["/api/".into()]), ClientKind::Api);
    }

    #[test]
    fn forwarded_proto_wins_only_with_a_known_value() {
        assert_eq!(req("GET", "/", &[("x-forwarded-proto", "https")]).scheme, "https");
        assert_eq!(req("GET", "/", &[("x-forwarded-proto", "HTTPS, http")]).scheme, "https");
        assert_eq!(req("GET", "/", &[("x-forwarded-proto", "gopher")]).scheme, "http");
        assert_eq!(req("GET", "/", &[]).scheme, "http");
    }

    #[test]
    fn bearer_extraction() {
        let cases: Vec<(&str, Option<&str>)> = vec![
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
        ];
        for (h, want) in cases {
            assert_eq!(req("GET", "/", &[("authorization", h)]).bearer_token(), want, "{h}");
        }
    }

    #[test]
    fn non_utf8_header_bytes_are_harmless() {
        let mut h = vec![(":path".to_string(), b"/".to_vec()), ("cookie".into(), b"a=\xff; b=2".to_vec())];
        h.push(("authorization".into(), b"Bearer \xff\xfe".to_vec()));
        let r = RequestView::from_headers(h);
        assert_eq!(r.bearer_token(), None);
        assert_eq!(r.cookies(), [("b".to_string(), "2".to_string())]);
    }

    #[test]
    fn return_paths() {
        let cb = "/oauth2/callback";
        let cases: Vec<(&str, &str)> = vec![
            ("/some/page?x=1", "/some/page?x=1"),
            ("/", "/"),
            ("//evil.example/x", "/"),
            ("/\\evil.example", "/"),
            ("/\t/evil.example", "/"),
            ("/%2F%2Fevil.example", "/"),
            ("/%5cevil.example", "/"),
            ("https://evil.example/", "/"),
            ("evil", "/"),
            ("", "/"),
            ("/oauth2/callback?code=x", "/"),
            ("/a\r\nSet-Cookie: x", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(safe_return_path(input, cb), want, "{input:?}");
        }
        assert_eq!(safe_return_path(&format!("/{}", "a".repeat(3000)), cb), "/");
    }

    #[test]
    fn path_rules() {
        assert!(path_matches("/healthz", "/healthz"));
        assert!(path_matches("/healthz/live", "/healthz"));
        assert!(!path_matches("/healthzz", "/healthz"));
        assert!(path_matches("/api/x", "/api/"));
        assert!(!path_matches("/api", "/api/"));
        assert!(path_matches("/static.css", "/static*"));
    }
}
