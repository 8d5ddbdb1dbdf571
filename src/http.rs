//! Small HTTP vocabulary shared by the core: absolute URLs, query strings, outgoing calls and answers.

use std::fmt::Write as _;

/// An absolute `http`/`https` URL split the way a dispatched call needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub scheme: String,
    pub authority: String,
    /// Path and query, always starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// Parses an absolute URL. Userinfo, fragments, whitespace and control characters are
    /// refused: these URLs come from configuration or from the IdP and go into headers.
    pub fn parse(url: &str) -> Option<Endpoint> {
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return None;
        }
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            ("https", rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            ("http", rest)
        } else {
            return None;
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') || tail.contains('#') {
            return None;
        }
        let path = if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        Some(Endpoint { scheme: scheme.to_string(), authority: authority.to_string(), path })
    }

    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }

    /// The URL with extra query parameters appended (`?` or `&` as needed).
    pub fn with_query(&self, query: &str) -> String {
        let sep = if self.path.contains('?') { '&' } else { '?' };
        if query.is_empty() {
            self.url()
        } else {
            format!("{}{}{}", self.url(), sep, query)
        }
    }
}

/// An HTTP call the shell dispatches through the IdP cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub method: &'static str,
    pub endpoint: Endpoint,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

impl HttpCall {
    pub fn get(endpoint: Endpoint, timeout_ms: u64) -> HttpCall {
        HttpCall {
            method: "GET",
            endpoint,
            headers: vec![("accept".into(), "application/json".into())],
            body: None,
            timeout_ms,
        }
    }
}

/// What came back from a dispatched call. Envoy answers 503 itself when the IdP is
/// unreachable and 504 on a timeout, so `status` is always the thing to look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl CallResponse {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// A response the filter writes itself instead of going upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// `application/x-www-form-urlencoded` / RFC 3986 unreserved-only percent encoding.
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` and `+` (form encoding). Invalid escapes or non-UTF-8 give `None`.
pub fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i.checked_add(1)?).and_then(|c| hex_val(*c))?;
                let lo = bytes.get(i.checked_add(2)?).and_then(|c| hex_val(*c))?;
                out.push(hi.checked_mul(16)?.checked_add(lo)?);
                i = i.checked_add(3)?;
            }
            b'+' => {
                out.push(b' ');
                i = i.checked_add(1)?;
            }
            other => {
                out.push(other);
                i = i.checked_add(1)?;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => c.checked_sub(b'0'),
        b'a'..=b'f' => c.checked_sub(b'a').and_then(|v| v.checked_add(10)),
        b'A'..=b'F' => c.checked_sub(b'A').and_then(|v| v.checked_add(10)),
        _ => None,
    }
}

/// Builds `k=v&k2=v2` with every key and value encoded.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}

/// Parsed query string: every `k=v` pair in order, decoded. Undecodable pairs are dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// More parameters than this is not a login response; it is an attack on the parser.
const MAX_QUERY_PAIRS: usize = 64;

/// `path` (a `:path`, query included) without each query parameter whose percent-decoded
/// name is `name`; every other byte stays as sent (a query rebuilt from parsed pairs would
/// drop what does not decode, re-encode `+`, and lose a bare `flag`'s form). `None`: the
/// query had no such parameter.
pub fn without_query_param(path: &str, name: &str) -> Option<String> {
    let (base, query) = path.split_once('?')?;
    let mut removed = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|segment| {
            let key = segment.split_once('=').map_or(*segment, |(k, _)| k);
            let hit = percent_decode(key).is_some_and(|k| k == name);
            removed |= hit;
            !hit
        })
        .collect();
    if !removed {
        return None;
    }
    let rest = kept.join("&");
    Some(if rest.bytes().all(|b| b == b'&') { base.to_string() } else { format!("{base}?{rest}") })
}

impl Query {
    pub fn parse(query: &str) -> Query {
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .take(MAX_QUERY_PAIRS)
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Some((percent_decode(k)?, percent_decode(v)?))
            })
            .collect();
        Query { pairs }
    }

    /// The value of `name` when it occurs exactly once. A repeated parameter is treated as
    /// absent: RFC 6749 3.1 says request and response parameters must not be repeated.
    pub fn single(&self, name: &str) -> Option<&str> {
        let mut found = self.pairs.iter().filter(|(k, _)| k == name);
        let first = found.next()?;
        if found.next().is_some() {
            return None;
        }
        Some(first.1.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.pairs.iter().filter(|(k, _)| k == name).count()
    }

    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// Splits a request path into (path, query) at the first `?`.
pub fn split_path(path: &str) -> (&str, &str) {
    path.split_once('?').unwrap_or((path, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parsing() {
        let cases: &[(&str, Option<(&str, &str, &str)>)] = &[
            ("https://idp.example.com/token", Some(("https", "idp.example.com", "/token"))),
            ("http://127.0.0.1:9000", Some(("http", "127.0.0.1:9000", "/"))),
            ("http://h:1?x=1", Some(("http", "h:1", "/?x=1"))),
            ("https://h/a/b?c=d", Some(("https", "h", "/a/b?c=d"))),
            ("ftp://h/", None),
            ("https://", None),
            ("https://user@h/", None),
            ("https://h/a#frag", None),
            ("https://h/a b", None),
            ("https://h/\r\nx", None),
            ("/relative", None),
        ];
        for (input, want) in cases {
            let got = Endpoint::parse(input);
            match want {
                None => assert!(got.is_none(), "{input} should be refused"),
                Some((s, a, p)) => {
                    let e = got.unwrap_or_else(|| panic!("{input} should parse"));
                    assert_eq!((e.scheme.as_str(), e.authority.as_str(), e.path.as_str()), (*s, *a, *p));
                }
            }
        }
    }

    #[test]
    fn query_roundtrip_and_rules() {
        let q = Query::parse("code=a%2Bb&state=x+y&iss=https%3A%2F%2Fi&dup=1&dup=2&bad=%zz&flag");
        assert_eq!(q.single("code"), Some("a+b"));
        assert_eq!(q.single("state"), Some("x y"));
        assert_eq!(q.single("iss"), Some("https://i"));
        assert_eq!(q.single("dup"), None, "repeated parameters are ambiguous");
        assert_eq!(q.single("bad"), None);
        assert_eq!(q.single("flag"), Some(""));
        assert_eq!(form_encode(&[("a b", "c&d=é")]), "a%20b=c%26d%3D%C3%A9");
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn query_is_bounded() {
        let many = (0..1000).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join("&");
        assert_eq!(Query::parse(&many).pairs().len(), MAX_QUERY_PAIRS);
    }
}
