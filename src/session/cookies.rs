//! Cookie wire format: parsing `Cookie`, writing `Set-Cookie`, and splitting large values into numbered chunks.

use std::borrow::Cow;

/// One cookie (name + `=` + value) may not exceed this: browsers cap a cookie near 4096
/// bytes including attributes, and proxies in front of Envoy often cap less.
pub const MAX_COOKIE_BYTES: usize = 4000;
/// A session larger than this many chunks is refused rather than written.
pub const MAX_CHUNKS: usize = 16;
/// At most this many cookies are read from one request.
const MAX_COOKIES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// Attributes every cookie of the filter carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub secure: bool,
    pub same_site: SameSite,
    pub domain: Option<String>,
}

/// Parses `Cookie` header values into (name, value) pairs, in order. Pairs that are not
/// UTF-8 or have no `=` are skipped; a hostile header costs at most `MAX_COOKIES` pairs.
pub fn parse(headers: &[&[u8]]) -> Vec<(String, String)> {
    parse_all(headers).pairs
}

/// `Cookie` headers parsed, and whether that lost nothing.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub pairs: Vec<(String, String)>,
    /// Every `;`-separated segment became a pair (none empty, unreadable or past the bound):
    /// then the pairs alone tell what the headers hold.
    pub complete: bool,
}

pub fn parse_all(headers: &[&[u8]]) -> Parsed {
    let mut out = Parsed { pairs: Vec::new(), complete: true };
    for header in headers {
        for pair in header.split(|b| *b == b';') {
            if out.pairs.len() >= MAX_COOKIES {
                out.complete = false;
                return out;
            }
            let Ok(pair) = std::str::from_utf8(pair) else {
                out.complete = false;
                continue;
            };
            let Some((name, value)) = pair.trim().split_once('=') else {
                out.complete = false;
                continue;
            };
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            out.pairs.push((name.trim().to_string(), value.to_string()));
        }
    }
    out
}

/// Renders a `Set-Cookie` value. Path is always `/`: the callback and every protected
/// path must see the filter's cookies.
pub fn set_cookie(name: &str, value: &str, attrs: &Attributes, max_age: Option<u64>) -> String {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite={}", attrs.same_site.as_str());
    if attrs.secure || attrs.same_site == SameSite::None {
        s.push_str("; Secure");
    }
    if let Some(domain) = &attrs.domain {
        s.push_str("; Domain=");
        s.push_str(domain);
    }
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    s
}

/// A `Set-Cookie` that deletes `name`.
pub fn clear_cookie(name: &str, attrs: &Attributes) -> String {
    format!("{}; Expires=Thu, 01 Jan 1970 00:00:00 GMT", set_cookie(name, "", attrs, Some(0)))
}

/// `Set-Cookie`s that delete the session cookie `name` wherever it may be: with `Domain`
/// set, also its host-only twin, which a browser still holds from before `cookie_domain`
/// was configured and sends alongside (two cookies of one name read as no session).
pub fn clear_session_cookie(name: &str, attrs: &Attributes) -> Vec<String> {
    let mut out = vec![clear_cookie(name, attrs)];
    if attrs.domain.is_some() {
        out.push(clear_cookie(name, &Attributes { domain: None, ..attrs.clone() }));
    }
    out
}

/// The cookies needed to carry `value` under the base `name`: the plain name when it
/// fits one cookie, else `name_0 .. name_{n-1}`, the first chunk prefixed with `n~` so a
/// missing or extra chunk is detected before decryption. `None` when it would need more
/// than `MAX_CHUNKS` cookies.
pub fn split(name: &str, value: &str) -> Option<Vec<(String, String)>> {
    if name.len().saturating_add(1).saturating_add(value.len()) <= MAX_COOKIE_BYTES {
        return Some(vec![(name.to_string(), value.to_string())]);
    }
    // Chunk names are `name_NN` (at most 3 more bytes), values get at most `NN~`.
    let room = MAX_COOKIE_BYTES.checked_sub(name.len().saturating_add(4).saturating_add(3))?;
    if room == 0 {
        return None;
    }
    let count = value.len().div_ceil(room);
    if count > MAX_CHUNKS {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    // The value is base64url (ASCII), so byte chunks are char boundaries.
    for (i, chunk) in value.as_bytes().chunks(room).enumerate() {
        let chunk = std::str::from_utf8(chunk).ok()?;
        let v = if i == 0 { format!("{count}~{chunk}") } else { chunk.to_string() };
        out.push((chunk_name(name, i), v));
    }
    Some(out)
}

fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}_{index}")
}

/// Reassembles what `split` wrote. Missing, extra or duplicated chunks give `None`: the
/// session then reads as absent, never as a mix of two sessions.
pub fn join<'a>(cookies: &'a [(String, String)], name: &str) -> Option<Cow<'a, str>> {
    let plain: Vec<&String> = cookies.iter().filter(|(n, _)| n == name).map(|(_, v)| v).collect();
    let has_chunks = cookies.iter().any(|(n, _)| chunk_index(n, name) == Some("0"));
    match (plain.as_slice(), has_chunks) {
        ([only], false) => return Some(Cow::Borrowed(only.as_str())),
        ([], true) => {}
        _ => return None,
    }
    let mut chunks: Vec<(usize, &str)> = Vec::new();
    for (n, v) in cookies {
        if let Some(idx) = chunk_index(n, name) {
            // Only canonical decimal indices: `_01` is not ours.
            let index: usize = idx.parse().ok().filter(|i: &usize| i.to_string() == idx)?;
            chunks.push((index, v));
        }
    }
    chunks.sort_by_key(|(i, _)| *i);
    let (_, first) = chunks.first()?;
    let (count, first_value) = first.split_once('~')?;
    let count: usize = count.parse().ok()?;
    if !(2..=MAX_CHUNKS).contains(&count) || chunks.len() != count {
        return None;
    }
    let mut value = String::from(first_value);
    for (expected, (index, v)) in chunks.iter().enumerate() {
        if *index != expected {
            return None;
        }
        if expected > 0 {
            value.push_str(v);
        }
    }
    Some(Cow::Owned(value))
}

/// Whether the request carries any cookie of the session `name` (plain or chunk).
pub fn has_session_cookie(cookies: &[(String, String)], name: &str) -> bool {
    cookies.iter().any(|(n, _)| is_session_cookie(n, name))
}

/// `cookie` is the session `name` itself or one of its chunks.
pub fn is_session_cookie(cookie: &str, name: &str) -> bool {
    cookie == name || chunk_index(cookie, name).is_some()
}

/// The index of chunk `cookie` of the session `name` (`<name>_<digits>`), as written.
/// Only digits name a chunk: the filter's login cookies share the prefix (`<name>_tx.<id>`)
/// and are not part of the session.
fn chunk_index<'a>(cookie: &'a str, name: &str) -> Option<&'a str> {
    let index = cookie.strip_prefix(name)?.strip_prefix('_')?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then_some(index)
}

/// Names of every cookie in the request that belongs to the session `name` (plain or chunk).
pub fn session_cookie_names(cookies: &[(String, String)], name: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (n, _) in cookies.iter().filter(|(n, _)| is_session_cookie(n, name)) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_cookies(v: &[(String, String)]) -> Vec<(String, String)> {
        v.to_vec()
    }

    #[test]
    fn parse_is_forgiving_but_bounded() {
        let h: &[&[u8]] = &[b"a=1; b=\"2\";c; =x;  d = 4 ", b"e=\xff\xfe; f=6"];
        let got = parse(h);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "", "d", "f"]);
        assert_eq!(got[1].1, "2");
        let many = "x=1;".repeat(10_000);
        assert_eq!(parse(&[many.as_bytes()]).len(), 256);
    }

    #[test]
    fn parse_says_whether_it_lost_anything() {
        let cases: &[(&[&[u8]], bool)] = &[
            (&[b"a=1; b=\"2\""], true),
            (&[b"a=1", b"b=2"], true),
            (&[b"a=1;"], false),
            (&[b"a=1; flag"], false),
            (&[b"a=\xff"], false),
            (&[], true),
        ];
        for (headers, complete) in cases {
            assert_eq!(parse_all(headers).complete, *complete, "{headers:?}");
        }
        assert!(!parse_all(&["x=1;".repeat(300).trim_end_matches(';').as_bytes()]).complete, "past MAX_COOKIES");
    }

    #[test]
    fn set_cookie_attributes() {
        let a = Attributes { secure: true, same_site: SameSite::Lax, domain: None };
        assert_eq!(set_cookie("n", "v", &a, Some(60)), "n=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60");
        let b = Attributes { secure: false, same_site: SameSite::Strict, domain: Some("example.com".into()) };
        assert_eq!(set_cookie("n", "v", &b, None), "n=v; Path=/; HttpOnly; SameSite=Strict; Domain=example.com");
        assert!(clear_cookie("n", &b).contains("Max-Age=0"));
    }

    #[test]
    fn split_join_roundtrip() {
        for len in [0usize, 10, 3989, 3990, 3991, 8000, 20_000, 40_000] {
            let value: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let parts = split("oidc_edge", &value).unwrap();
            for (n, v) in &parts {
                assert!(n.len() + 1 + v.len() <= MAX_COOKIE_BYTES, "{len}: {n} too big");
            }
            assert_eq!(join(&as_cookies(&parts), "oidc_edge").as_deref(), Some(value.as_str()), "{len}");
        }
        let huge = "a".repeat(MAX_COOKIE_BYTES * (MAX_CHUNKS + 1));
        assert!(split("oidc_edge", &huge).is_none());
    }

    #[test]
    fn join_refuses_inconsistent_chunks() {
        let value = "x".repeat(10_000);
        let parts = split("s", &value).unwrap();
        assert_eq!(parts.len(), 3);
        let mut missing = parts.clone();
        missing.remove(1);
        assert_eq!(join(&missing, "s"), None, "missing chunk");
        let mut extra = parts.clone();
        extra.push(("s_3".into(), "y".into()));
        assert_eq!(join(&extra, "s"), None, "extra chunk");
        let mut dup = parts.clone();
        dup.push(("s_1".into(), "x".into()));
        assert_eq!(join(&dup, "s"), None, "duplicate chunk");
        let mut mixed = parts.clone();
        mixed.push(("s".into(), "plain".into()));
        assert_eq!(join(&mixed, "s"), None, "plain and chunked at once");
        let mut weird = parts.clone();
        weird.push(("s_01".into(), "x".into()));
        assert_eq!(join(&weird, "s"), None, "non-canonical index");
        let mut badcount = parts.clone();
        badcount[0].1 = badcount[0].1.replacen("3~", "9~", 1);
        assert_eq!(join(&badcount, "s"), None);
        assert_eq!(join(&[("s".into(), "v".into()), ("s".into(), "w".into())], "s"), None, "two plain");
        assert_eq!(join(&[("other".into(), "v".into())], "s"), None);
        // A login in flight in another tab (`s_tx.<id>`) does not break a chunked session.
        let mut with_tx = parts.clone();
        with_tx.push(("s_tx.AbCdEfGhIjKl".into(), "sealed-transaction".into()));
        assert_eq!(join(&with_tx, "s").as_deref(), Some(value.as_str()), "transaction cookie beside chunks");
        // Chunks arriving out of order are fine.
        let mut shuffled = parts.clone();
        shuffled.reverse();
        assert_eq!(join(&shuffled, "s").as_deref(), Some(value.as_str()));
    }

    #[test]
    fn names_of_session_cookies() {
        let c = vec![("s".to_string(), "1".to_string()), ("s_0".into(), "".into()), ("s_x".into(), "".into()), ("st".into(), "".into())];
        assert_eq!(session_cookie_names(&c, "s"), ["s", "s_0"]);
    }
}
