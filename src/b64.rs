//! Base64 flavours used on the wire: strict base64url without padding (JOSE, cookies).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// Strict RFC 7515 base64url: no padding, no `+`/`/`, canonical trailing bits.
pub fn url_decode(input: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input.as_bytes()).ok()
}

pub fn url_encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

/// Standard base64 with padding (configuration secrets, HTTP Basic).
pub fn std_decode(input: &str) -> Option<Vec<u8>> {
    STANDARD.decode(input.trim().as_bytes()).ok()
}

pub fn std_encode(input: &[u8]) -> String {
    STANDARD.encode(input)
}

/// Accepts either alphabet, with or without padding: secrets pasted by operators
/// come in every flavour, and only their length matters afterwards.
pub fn lenient_decode(input: &str) -> Option<Vec<u8>> {
    let trimmed = input.trim();
    let normalised: String = trimmed
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    url_decode(&normalised)
}
