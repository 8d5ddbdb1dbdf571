//! The documented configuration keys (the README's reference table is checked against them) and "did you mean" hints.

use serde_json::{Map, Value};

use super::ConfigError;

/// One documented configuration key. The README's reference table is checked against this list.
pub struct FieldDoc {
    pub name: &'static str,
    pub kind: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

pub const FIELDS: &[FieldDoc] = &[
    // The identity provider.
    FieldDoc { name: "issuer", kind: "string (URL)", default: "required", doc: "The IdP's issuer. Discovery is fetched from `issuer + /.well-known/openid-configuration` (unless `discovery_url` or explicit endpoints say otherwise) and every token's `iss` must equal it exactly." },
    FieldDoc { name: "idp_cluster", kind: "string", default: "required", doc: "The Envoy cluster that reaches the IdP; every discovery, JWKS, token and userinfo call goes through it, with `:authority` taken from the endpoint URL." },
    FieldDoc { name: "discovery_url", kind: "string (URL)", default: "`issuer + /.well-known/openid-configuration`", doc: "Where the discovery document is, when not at the standard place." },
    FieldDoc { name: "authorization_endpoint", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value." },
    FieldDoc { name: "token_endpoint", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value." },
    FieldDoc { name: "jwks_uri", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value. With `authorization_endpoint` and `token_endpoint` also set (or `jwks`), discovery is not fetched at all." },
    FieldDoc { name: "userinfo_endpoint", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value; used when `userinfo` is on." },
    FieldDoc { name: "end_session_endpoint", kind: "string (URL)", default: "from discovery", doc: "Overrides the discovery document's value; where `logout_path` sends the browser." },
    FieldDoc { name: "jwks", kind: "object", default: "none", doc: "Static public keys (`{\"keys\": [...]}`) for IdPs without a JWKS endpoint; replaces fetching `jwks_uri`." },
    FieldDoc { name: "idp_timeout", kind: "duration", default: "`5s`", doc: "Timeout of every call to the IdP (1s to 60s); also how long a request waits for an unknown-`kid` refetch." },
    FieldDoc { name: "jwks_refresh_interval", kind: "duration", default: "`1h`", doc: "How often the JWKS is refetched (1 minute to 30 days)." },
    FieldDoc { name: "discovery_refresh_interval", kind: "duration", default: "`24h`", doc: "How often the discovery document is refetched (1 minute to 30 days)." },
    FieldDoc { name: "key_rotation", kind: "string", default: "`replace`", doc: "How a fetched JWKS combines with the keys in force: `replace` (the fetched set only), `add` (keys are never dropped), `expire_after` (keys missing from the fetched set stay valid for `key_overlap`)." },
    FieldDoc { name: "key_overlap", kind: "duration", default: "`1h`", doc: "With `key_rotation: expire_after`: how long a key missing from the fetched set stays valid (1 hour to 1 day)." },
    FieldDoc { name: "kid_refetch_cooldown", kind: "duration", default: "`30s`", doc: "A token with an unknown `kid` triggers a JWKS refetch at most once per this period, for the whole proxy (1s to 1h)." },
    FieldDoc { name: "max_key_staleness", kind: "duration", default: "`24h`", doc: "The longest a key set is used without a successful refresh; after that, tokens are refused until the IdP answers (1 minute to 30 days, longer than `jwks_refresh_interval`)." },
    // The client.
    FieldDoc { name: "client_id", kind: "string", default: "required", doc: "The client ID registered at the IdP." },
    FieldDoc { name: "client_secret", kind: "secret", default: "required (except with `private_key_jwt`)", doc: "The client secret registered at the IdP." },
    FieldDoc { name: "token_endpoint_auth", kind: "string", default: "`client_secret_basic`", doc: "How the client authenticates at the token endpoint: `client_secret_basic`, `client_secret_post`, `client_secret_jwt` (an HS256 client assertion, RFC 7523) or `private_key_jwt` (an assertion signed with `client_private_key`; no client secret)." },
    FieldDoc { name: "client_private_key", kind: "secret (PEM)", default: "required with `private_key_jwt`", doc: "The client's unencrypted private key, PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`): RSA 2048+ signs RS256, EC P-256 / P-384 ES256 / ES384. Register its public key at the IdP." },
    FieldDoc { name: "client_key_id", kind: "string", default: "none", doc: "With `private_key_jwt`: the `kid` of the assertion's header, as registered at the IdP." },
    FieldDoc { name: "client_assertion_audience", kind: "string", default: "`token_endpoint`", doc: "The `aud` of `client_secret_jwt` / `private_key_jwt` assertions: `token_endpoint` (its URL, what most IdPs expect) or `issuer` (the IdP's issuer alone, which no other server accepts: the current advice against audience injection, where the IdP supports it)." },
    FieldDoc { name: "client_key_x5t", kind: "string", default: "none", doc: "With `private_key_jwt`: the `x5t` of the assertion's header, the base64url SHA-1 thumbprint of the key's certificate (Entra ID identifies certificate credentials so)." },
    FieldDoc { name: "redirect_path", kind: "string (path)", default: "`/oauth2/callback`", doc: "The callback path the IdP redirects back to; the redirect URI is built from the request's scheme (`X-Forwarded-Proto` first) and host. Routes of different issuers on one host should not share it: a shared callback requires the `iss` response parameter (RFC 9207)." },
    FieldDoc { name: "redirect_uri", kind: "string (URL)", default: "built per request", doc: "An absolute redirect URI that replaces the one built from the request; its path must be `redirect_path`." },
    FieldDoc { name: "scopes", kind: "list of strings", default: "`[\"openid\",\"profile\",\"email\"]`", doc: "Scopes to request; `openid` is always added." },
    FieldDoc { name: "auth_query_params", kind: "map of string to list of strings", default: "`{}`", doc: "Extra authorization request parameters: one value gives `k=v`, an empty list a bare `k`, several values repeat the key. With `max_age` (one number of seconds) the ID token must carry an `auth_time` no older than that (OIDC Core 3.1.2.1)." },
    FieldDoc { name: "userinfo", kind: "boolean", default: "`false`", doc: "Fetch the userinfo endpoint at login (its `sub` must equal the ID token's) and combine its claims with the ID token's, the ID token winning on conflicts." },
    // Tokens.
    FieldDoc { name: "clock_skew_seconds", kind: "integer", default: "`60`", doc: "Tolerance for `exp`, `nbf` and `iat`, in seconds (0 to 600)." },
    FieldDoc { name: "allowed_algorithms", kind: "list of strings", default: "`[\"RS256\"]`", doc: "Signature algorithms accepted on tokens: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA. The key's type must fit too; HMAC and `none` are never accepted." },
    FieldDoc { name: "audiences", kind: "list of strings", default: "`[client_id]`", doc: "Accepted `aud` values of ID tokens and of bearer tokens from `issuer`. An ID token must name only these (OIDC Core 3.1.3.7: another audience is one the client does not trust), and with several, `azp` must be the client; a bearer token needs one of them." },
    FieldDoc { name: "bearer_validators", kind: "list of objects", default: "`[]`", doc: "Extra accepted issuers of bearer (access) tokens: each `{\"issuer\", \"audiences\", and one of \"jwks_uri\", \"discovery_url\", \"jwks\"}` (default: the issuer's discovery), optionally `idp_cluster`." },
    FieldDoc { name: "forward_token", kind: "string", default: "`id_token`", doc: "What a session sends upstream in `Authorization: Bearer`: `id_token`, `access_token`, or `none` (no Authorization header)." },
    FieldDoc { name: "token_cache_size", kind: "integer", default: "`1024`", doc: "Verified tokens and opened sessions remembered per worker (keyed by a hash, honouring `exp`); 0 turns the cache off." },
    FieldDoc { name: "token_cache_ttl", kind: "duration", default: "`5m`", doc: "The longest a cached verdict is reused before the token is checked again (1s to 1h)." },
    // Which requests.
    FieldDoc { name: "api_paths", kind: "list of paths", default: "`[]`", doc: "Paths whose clients always get 401 instead of a redirect (a trailing `/` or `*` makes a prefix)." },
    FieldDoc { name: "pass_through_paths", kind: "list of paths", default: "`[]`", doc: "Paths never authenticated (health checks, static assets); identity headers are still stripped. A path is exempt only if it matches both as sent and as decoded and normalised (`/healthz/../admin` is not)." },
    FieldDoc { name: "allow_query_token", kind: "boolean", default: "`false`", doc: "Accept a bearer token in the `access_token` query parameter of WebSocket upgrades; every `access_token` parameter of every request is then removed before it goes upstream, used or not." },
    FieldDoc { name: "allowed_origins", kind: "list of strings", default: "`[]`", doc: "Origins (`https://app.example.com`) besides the request's own that may open cookie-authenticated WebSockets." },
    // Claims and authorization.
    FieldDoc { name: "claim_headers", kind: "map of header to claim path", default: "`{}`", doc: "Upstream headers set from claims (`\"X-Groups\": \"groups\"`, nested paths with dots; a claim whose whole name is the path, such as Auth0's `https://example.com/roles`, is read as it is; arrays joined with commas); client-sent copies are always removed. Headers the filter sets itself or that steer the connection or the proxies (`Connection`, `TE`, `X-Forwarded-*`, `x-envoy-*`, `Sec-*`, …) are refused." },
    FieldDoc { name: "claim_map", kind: "map of claim to map", default: "`{}`", doc: "Renames claim values before headers and rules, e.g. `{\"groups\": {\"a1b2-guid\": \"admins\"}}`; unmapped values stay as they are." },
    FieldDoc { name: "require", kind: "list of rules", default: "`[]`", doc: "Every rule must hold or the request gets 403 (with a bearer token, also RFC 6750's `WWW-Authenticate: Bearer error=\"insufficient_scope\"`): `{\"claim\": \"groups\", \"one_of\": [\"admins\"]}` or `{\"claim\": \"email_verified\", \"equals\": true}`." },
    // Cookies and sessions.
    FieldDoc { name: "cookie_secret", kind: "secret (base64)", default: "required (or `cookie_secrets`)", doc: "Base64 of 32 random bytes (`openssl rand -base64 32`); seals the session and login cookies." },
    FieldDoc { name: "cookie_secrets", kind: "list of secrets", default: "none", doc: "Several cookie secrets for rotation: the first seals, all open. Replaces `cookie_secret`." },
    FieldDoc { name: "cookie_name", kind: "string", default: "`oidc_edge`", doc: "Base name of the session cookie (`<name>`, or `<name>_0`, `<name>_1`, … when split); login cookies are `<name>_tx.<id>`. `__Host-` is prepended over https when no domain is set. A name starting with another profile's name and `_` is refused." },
    FieldDoc { name: "cookie_domain", kind: "string", default: "none (host-only)", doc: "The cookies' `Domain`; without it cookies are host-only and use the `__Host-` prefix over https." },
    FieldDoc { name: "cookie_same_site", kind: "string", default: "`lax`", doc: "`lax`, `strict` or `none` (`none` implies `Secure`)." },
    FieldDoc { name: "session_lifetime", kind: "duration", default: "`8h`", doc: "The longest a session lasts after login, whatever the tokens say (5 minutes to 30 days)." },
    FieldDoc { name: "login_timeout", kind: "duration", default: "`10m`", doc: "How long a started login (the sealed transaction cookie) stays valid (1 minute to 1 hour)." },
    FieldDoc { name: "refresh_before_expiry", kind: "duration", default: "`60s`", doc: "Refresh the tokens this long before they expire, when a refresh token is held (0s to 1h)." },
    FieldDoc { name: "logout_path", kind: "string (path)", default: "`/oauth2/logout`", doc: "Clears the session and sends the browser to the IdP's end-session endpoint. Only a request that shows it comes from this site (`Sec-Fetch-Site`, `Origin` or `Referer`), or a non-browser client, logs out; a cross-site one gets a page with a \"Sign out\" button. The answer carries `Clear-Site-Data: \"cache\"`. The sessions of the host's other routes with the same `logout_path` end too (only this route's IdP is visited)." },
    FieldDoc { name: "login_path", kind: "string (path)", default: "`/oauth2/login`", doc: "Starts a login on request (OIDC Core 4, third-party initiated login): a GET with optional `target_link_uri` (where to land after login, on this site only), `login_hint`, and `iss` (must be `issuer`)." },
    FieldDoc { name: "post_logout_redirect_uri", kind: "string (URL)", default: "`/` on this host", doc: "Where the IdP sends the browser after logout (register it at the IdP)." },
    // Several applications.
    FieldDoc { name: "routes", kind: "list of objects", default: "`[]`", doc: "Further relying parties by `host` (exact, or `*.example.com`; with the port clients send when not the default, `app.example.com:8443`) and optional `path_prefix` or `path_exact`, each overriding any key above. Exact hosts are tried first, then wildcards (longest first), then routes without a host, each in the order written; no match uses the top level. A host whose spelling as sent (port, trailing dot) selects another route than without it gets 400 `host_ambiguous`; a route with its own `issuer` does not inherit `bearer_validators`." },
];

pub(super) fn check_known(map: &Map<String, Value>, prefix: &str, extra: &[&str]) -> Result<(), ConfigError> {
    for key in map.keys() {
        if !FIELDS.iter().any(|f| f.name == key) && !extra.contains(&key.as_str()) {
            let hint = closest_field(key)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_else(|| "; see the configuration reference in the README".into());
            return Err(ConfigError::new(&format!("{prefix}{key}"), format!("unknown field{hint}")));
        }
    }
    Ok(())
}

fn closest_field(key: &str) -> Option<&'static str> {
    closest_name(key, FIELDS.iter().map(|f| f.name))
}

/// The candidate nearest a misspelt name (at most 3 edits away), for a "did you mean" hint;
/// the annotation renderer uses it too.
pub fn closest_name(key: &str, candidates: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    candidates.map(|n| (edit_distance(key, n), n)).filter(|(d, _)| *d <= 3).min_by_key(|(d, _)| *d).map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i.saturating_add(1)];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(usize::MAX).saturating_add(usize::from(ca != *cb));
            let del = prev.get(j.saturating_add(1)).copied().unwrap_or(usize::MAX).saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}
