//! Shared helpers of the vector tests: loading the vector files, classifying each case
//! against the upstream expectation, and turning the PEM / X.509 key material of
//! jwt_verify_lib into RFC 7517 JWKs (oidc-edge reads only JWKS; the conversion lets the
//! tests still check those signatures with the core's primitives).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use oidc_edge::b64;
use oidc_edge::error::Reason;
use serde_json::{Map, Value};

/// The whole check (`jwt::validate`, every supported algorithm allowed, `iat` optional as
/// for bearer tokens): the verdict oidc-edge gives a vector's token.
pub fn validate_all_algs(token: &str, keys: &oidc_edge::jwks::KeySet, issuers: &[String], audiences: &[String], now: u64, skew: u64) -> Result<(), Reason> {
    use oidc_edge::jwt::{self, Alg, ClaimRules};
    let rules = ClaimRules { issuers, audiences, authorized_party: None, require_iat: false, nonce: None, access_token: None, now, skew, token_use: oidc_edge::jwt::TokenUse::Bearer };
    jwt::validate(token, keys, &rules, &Alg::ALL, oidc_edge::flow::MAX_TOKEN_BYTES).map(|_| ())
}

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("vectors")
}

/// A vector file as a JSON value. The two `now` values of 2^63 + 2 in
/// `time_constraint.json` are integers above `i64::MAX`: serde_json keeps them as `u64`.
pub fn load(rel: &str) -> Value {
    let path = vectors_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn cases(rel: &str) -> Vec<Value> {
    match load(rel) {
        Value::Array(items) => items,
        other => panic!("{rel}: not an array but {other}"),
    }
}

pub fn s<'a>(case: &'a Value, member: &str) -> &'a str {
    case.get(member).and_then(Value::as_str).unwrap_or_else(|| panic!("no string `{member}` in {case}"))
}

pub fn opt_s<'a>(case: &'a Value, member: &str) -> Option<&'a str> {
    case.get(member).and_then(Value::as_str)
}

/// `Ok` as "ok", an error as its stable code: the vocabulary of the verdict strings.
pub fn code(r: &Result<(), Reason>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(reason) => reason.code(),
    }
}

/// base64url that tolerates the `=` padding some upstream vectors carry (the tests
/// need the bytes; whether oidc-edge accepts the padding is asserted separately).
pub fn b64_loose(s: &str) -> Option<Vec<u8>> {
    b64::url_decode(s.trim_end_matches('='))
}

/// The payload of a compact token as a JSON object, if it is one.
pub fn payload_of(token: &str) -> Option<Map<String, Value>> {
    let p = token.split('.').nth(1)?;
    match serde_json::from_slice::<Value>(&b64_loose(p)?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The JWKS error message of `jwks::parse_jwks` reduced to a stable category.
pub fn jwks_error_category(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("larger than") {
        "too-large"
    } else if m.contains("not json") {
        "not-json"
    } else if m.contains("no `keys` array") {
        "no-keys-array"
    } else if m.contains("private or symmetric") {
        "private-members"
    } else if m.contains("is empty") {
        "empty"
    } else if m.contains("no usable") {
        "no-usable-key"
    } else {
        "other"
    }
}

/// Private or symmetric members: what "public members only" strips.
pub const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

pub fn public_only(jwk: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(map) = jwk {
        for (k, v) in map {
            if !PRIVATE_MEMBERS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------
// Classification of every case against the upstream expectation.

/// Why oidc-edge's verdict is not the upstream one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// oidc-edge refuses what upstream accepts (or refuses earlier), on purpose.
    Stricter,
    /// Both refuse, for another reason (another check runs first in oidc-edge).
    OtherReason,
    /// The case exercises something oidc-edge does not have (a key format, a serialization).
    NotApplicable,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Stricter => "stricter by design",
            Kind::OtherReason => "same outcome, other reason",
            Kind::NotApplicable => "not applicable",
        }
    }
}

/// One case where oidc-edge deliberately differs: its exact verdict and a one-line reason.
pub struct Known {
    pub name: &'static str,
    pub kind: Kind,
    pub verdict: &'static str,
    pub why: &'static str,
}

/// Counts agreements and differences; collects every failure so one run shows them all.
pub struct Tally<'t> {
    file: &'static str,
    table: &'t [Known],
    agree: usize,
    kinds: Vec<(Kind, &'static str)>,
    seen_names: BTreeSet<String>,
    used: BTreeSet<&'static str>,
    failures: Vec<String>,
    lines: Vec<String>,
}

impl<'t> Tally<'t> {
    pub fn new(file: &'static str, table: &'t [Known]) -> Tally<'t> {
        let mut names = BTreeSet::new();
        let mut failures = Vec::new();
        for k in table {
            if !names.insert(k.name) {
                failures.push(format!("table lists `{}` twice", k.name));
            }
        }
        Tally { file, table, agree: 0, kinds: Vec::new(), seen_names: BTreeSet::new(), used: BTreeSet::new(), failures, lines: Vec::new() }
    }

    /// Records one case: `agrees` says whether `verdict` is the oidc-edge equivalent of
    /// the upstream `expect`. A disagreeing case must be in the table with this exact verdict.
    pub fn record(&mut self, name: &str, expect: &str, verdict: &str, agrees: bool) {
        if !self.seen_names.insert(name.to_string()) {
            self.failures.push(format!("case `{name}` seen twice"));
        }
        match self.table.iter().find(|k| k.name == name) {
            Some(known) => {
                self.used.insert(known.name);
                if agrees {
                    self.failures.push(format!("`{name}` now agrees with upstream ({expect}: {verdict}) but the table says it differs"));
                } else if known.verdict != verdict {
                    self.failures.push(format!("`{name}`: the table says `{}`, oidc-edge gives `{verdict}`", known.verdict));
                } else {
                    self.kinds.push((known.kind, known.name));
                    self.lines.push(format!("  {:<28} {name}: upstream {expect}, oidc-edge {verdict} ({})", known.kind.label(), known.why));
                }
            }
            None if agrees => {
                self.agree += 1;
                self.lines.push(format!("  {:<28} {name}: upstream {expect}, oidc-edge {verdict}", "agree"));
            }
            None => self.failures.push(format!(
                "`{name}`: upstream expects {expect}, oidc-edge gives `{verdict}`, and the table of deliberate differences does not list it"
            )),
        }
    }

    pub fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    /// Prints the per-case lines and the summary, then fails on any problem.
    pub fn finish(mut self) {
        for k in self.table {
            if !self.used.contains(k.name) {
                self.failures.push(format!("table entry `{}` matches no case", k.name));
            }
        }
        let count = |kind| self.kinds.iter().filter(|(k, _)| *k == kind).count();
        let total = self.agree + self.kinds.len();
        let mut out = String::new();
        let _ = writeln!(out, "{}: {total} cases", self.file);
        for l in &self.lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = writeln!(
            out,
            "{}: {total} cases: {} agree, {} stricter by design, {} same outcome with another reason, {} not applicable",
            self.file,
            self.agree,
            count(Kind::Stricter),
            count(Kind::OtherReason),
            count(Kind::NotApplicable)
        );
        println!("{out}");
        assert!(self.failures.is_empty(), "{}: {} problem(s):\n{}", self.file, self.failures.len(), self.failures.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------
// PEM and X.509 to JWK, with a DER reader just large enough for SubjectPublicKeyInfo.

struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        (len_bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), rest)
    };
    if rest.len() < len {
        return None;
    }
    let (body, rest) = rest.split_at(len);
    Some((Tlv { tag, body }, rest))
}

fn children(mut body: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let (tlv, rest) = read_tlv(body)?;
        out.push(tlv);
        body = rest;
    }
    Some(out)
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The body of the first PEM block with this label.
pub fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?.checked_add(begin.len())?;
    let stop = start.checked_add(text.get(start..)?.find(&end)?)?;
    let body: String = text.get(start..stop)?.chars().filter(|c| !c.is_whitespace()).collect();
    b64::std_decode(&body)
}

/// SubjectPublicKeyInfo DER to the public members of a JWK.
pub fn spki_to_jwk(der: &[u8]) -> Result<Map<String, Value>, String> {
    let (spki, _) = read_tlv(der).ok_or("SPKI is not DER")?;
    let parts = children(spki.body).ok_or("SPKI body is not DER")?;
    let [alg, key] = parts.as_slice() else { return Err("SPKI has not two members".into()) };
    let alg_parts = children(alg.body).ok_or("AlgorithmIdentifier is not DER")?;
    let oid = alg_parts.first().filter(|t| t.tag == 0x06).ok_or("no algorithm OID")?.body;
    let bits = key.body.split_first().filter(|(unused, _)| key.tag == 0x03 && **unused == 0).ok_or("key is not a BIT STRING")?.1;
    let mut jwk = Map::new();
    if oid == OID_RSA {
        let (seq, _) = read_tlv(bits).ok_or("RSAPublicKey is not DER")?;
        let ints = children(seq.body).ok_or("RSAPublicKey body is not DER")?;
        let [n, e] = ints.as_slice() else { return Err("RSAPublicKey has not two integers".into()) };
        let strip = |b: &[u8]| b.iter().skip_while(|x| **x == 0).copied().collect::<Vec<u8>>();
        jwk.insert("kty".into(), "RSA".into());
        jwk.insert("n".into(), b64::url_encode(&strip(n.body)).into());
        jwk.insert("e".into(), b64::url_encode(&strip(e.body)).into());
    } else if oid == OID_EC {
        let curve = alg_parts.get(1).filter(|t| t.tag == 0x06).ok_or("no curve OID")?.body;
        let (crv, len) = match curve {
            c if c == OID_P256 => ("P-256", 32),
            c if c == OID_P384 => ("P-384", 48),
            c if c == OID_P521 => ("P-521", 66),
            _ => return Err("unknown curve".into()),
        };
        let (tag, xy) = bits.split_first().ok_or("empty EC point")?;
        if *tag != 0x04 || xy.len() != 2 * len {
            return Err("EC point is not uncompressed".into());
        }
        let (x, y) = xy.split_at(len);
        jwk.insert("kty".into(), "EC".into());
        jwk.insert("crv".into(), crv.into());
        jwk.insert("x".into(), b64::url_encode(x).into());
        jwk.insert("y".into(), b64::url_encode(y).into());
    } else if oid == OID_ED25519 {
        jwk.insert("kty".into(), "OKP".into());
        jwk.insert("crv".into(), "Ed25519".into());
        jwk.insert("x".into(), b64::url_encode(bits).into());
    } else {
        return Err("key type not convertible (not RSA, EC or Ed25519)".into());
    }
    Ok(jwk)
}

/// An X.509 certificate (DER) to the JWK of its subject public key.
pub fn cert_to_jwk(der: &[u8]) -> Result<Map<String, Value>, String> {
    let (cert, _) = read_tlv(der).ok_or("certificate is not DER")?;
    let parts = children(cert.body).ok_or("certificate body is not DER")?;
    let tbs = parts.first().ok_or("no tbsCertificate")?;
    let fields = children(tbs.body).ok_or("tbsCertificate is not DER")?;
    // [0] version is optional; then serial, signature, issuer, validity, subject, SPKI.
    let skip = usize::from(fields.first().is_some_and(|f| f.tag == 0xa0));
    let spki = fields.get(skip + 5).ok_or("no subjectPublicKeyInfo")?;
    let mut whole = vec![spki.tag];
    // Re-wrap the SPKI so `spki_to_jwk` can read it as one TLV.
    let len = spki.body.len();
    if len < 0x80 {
        whole.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().skip_while(|b| **b == 0).copied().collect();
        whole.push(0x80 | bytes.len() as u8);
        whole.extend_from_slice(&bytes);
    }
    whole.extend_from_slice(spki.body);
    spki_to_jwk(&whole)
}

/// jwt_verify_lib's non-JWKS key material (`pem`, `x509_map`) as an RFC 7517 JWKS text,
/// applying `key_overrides` the way the upstream test sets `alg_`/`crv_` after parsing.
pub fn as_jwks(format: &str, material: &str, overrides: Option<&Value>) -> Result<String, String> {
    let mut keys = Vec::new();
    match format {
        "pem" => {
            let der = pem_block(material, "PUBLIC KEY").ok_or("no PUBLIC KEY block")?;
            let mut jwk = spki_to_jwk(&der)?;
            if let Some(Value::Object(o)) = overrides {
                for (k, v) in o {
                    jwk.insert(k.clone(), v.clone());
                }
            }
            keys.push(Value::Object(jwk));
        }
        "x509_map" => {
            let map: Map<String, Value> = serde_json::from_str(material).map_err(|e| e.to_string())?;
            for (kid, pem) in map {
                let pem = pem.as_str().ok_or("x509 map value is not a string")?;
                let der = pem_block(pem, "CERTIFICATE").ok_or("no CERTIFICATE block")?;
                let mut jwk = cert_to_jwk(&der)?;
                jwk.insert("kid".into(), kid.into());
                keys.push(Value::Object(jwk));
            }
        }
        other => return Err(format!("no conversion for key format {other}")),
    }
    Ok(serde_json::json!({ "keys": keys }).to_string())
}
