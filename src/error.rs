//! One error type for the core, with a stable code per cause for logs, stats and pages.

use std::fmt;

/// Why something was refused. `code()` is stable: it appears in logs, metrics and
/// `WWW-Authenticate` descriptions, so renaming one is a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // Token shape and header (RFC 7515, RFC 8725).
    TokenTooLarge,
    TokenMalformed,
    TokenBadBase64,
    TokenBadJson,
    AlgMissing,
    AlgNone,
    AlgNotAllowed,
    CritUnsupported,
    EmbeddedKeyRefused,
    KidInvalid,
    TokenKindRefused,
    // Key selection and signature.
    KeysNotLoaded,
    KidUnknown,
    KeyAmbiguous,
    KeyAlgMismatch,
    SignatureInvalid,
    // Claims (OIDC Core 3.1.3.7, RFC 7519).
    IssMissing,
    IssMismatch,
    AudMissing,
    AudMismatch,
    AzpMismatch,
    ExpMissing,
    Expired,
    NotYetValid,
    IatMissing,
    IatInFuture,
    SubMissing,
    NonceMissing,
    NonceMismatch,
    AtHashMismatch,
    ClaimInvalid,
    // Login callback (RFC 6749, RFC 9207, RFC 9700).
    StateMissing,
    StateUnknown,
    StateReplayed,
    TransactionExpired,
    IssParamMismatch,
    IssParamMissing,
    CodeMissing,
    IdpError,
    TokenEndpointFailed,
    TokenResponseInvalid,
    IdTokenMissing,
    // Session.
    SessionInvalid,
    SessionExpired,
    // Provider metadata.
    DiscoveryInvalid,
    DiscoveryIssuerMismatch,
    JwksInvalid,
    FetchFailed,
    NotReady,
    Forbidden,
    OriginRefused,
    Internal,
}

impl Reason {
    pub fn code(self) -> &'static str {
        use Reason::*;
        match self {
            TokenTooLarge => "token_too_large",
            TokenMalformed => "token_malformed",
            TokenBadBase64 => "token_bad_base64",
            TokenBadJson => "token_bad_json",
            AlgMissing => "alg_missing",
            AlgNone => "alg_none",
            AlgNotAllowed => "alg_not_allowed",
            CritUnsupported => "crit_unsupported",
            EmbeddedKeyRefused => "embedded_key_refused",
            KidInvalid => "kid_invalid",
            TokenKindRefused => "token_kind_refused",
            KeysNotLoaded => "keys_not_loaded",
            KidUnknown => "kid_unknown",
            KeyAmbiguous => "key_ambiguous",
            KeyAlgMismatch => "key_alg_mismatch",
            SignatureInvalid => "signature_invalid",
            IssMissing => "iss_missing",
            IssMismatch => "iss_mismatch",
            AudMissing => "aud_missing",
            AudMismatch => "aud_mismatch",
            AzpMismatch => "azp_mismatch",
            ExpMissing => "exp_missing",
            Expired => "expired",
            NotYetValid => "not_yet_valid",
            IatMissing => "iat_missing",
            IatInFuture => "iat_in_future",
            SubMissing => "sub_missing",
            NonceMissing => "nonce_missing",
            NonceMismatch => "nonce_mismatch",
            AtHashMismatch => "at_hash_mismatch",
            ClaimInvalid => "claim_invalid",
            StateMissing => "state_missing",
            StateUnknown => "state_unknown",
            StateReplayed => "state_replayed",
            TransactionExpired => "transaction_expired",
            IssParamMismatch => "iss_param_mismatch",
            IssParamMissing => "iss_param_missing",
            CodeMissing => "code_missing",
            IdpError => "idp_error",
            TokenEndpointFailed => "token_endpoint_failed",
            TokenResponseInvalid => "token_response_invalid",
            IdTokenMissing => "id_token_missing",
            SessionInvalid => "session_invalid",
            SessionExpired => "session_expired",
            DiscoveryInvalid => "discovery_invalid",
            DiscoveryIssuerMismatch => "discovery_issuer_mismatch",
            JwksInvalid => "jwks_invalid",
            FetchFailed => "fetch_failed",
            NotReady => "not_ready",
            Forbidden => "forbidden",
            OriginRefused => "origin_refused",
            Internal => "internal",
        }
    }

    /// A sentence for people (logs, error pages, `error_description`). Never holds a secret.
    pub fn describe(self) -> &'static str {
        use Reason::*;
        match self {
            TokenTooLarge => "the token is larger than the configured limit",
            TokenMalformed => "the token is not a compact JWS with three parts",
            TokenBadBase64 => "a part of the token is not valid base64url",
            TokenBadJson => "the token's header or payload is not a JSON object",
            AlgMissing => "the token's header has no algorithm",
            AlgNone => "unsigned tokens (alg none) are refused",
            AlgNotAllowed => "the token's algorithm is not allowed or does not fit the key",
            CritUnsupported => "the token's header names a critical extension that is not supported",
            EmbeddedKeyRefused => "the token's header brings its own key (jwk, jku, x5u, x5c), which is refused",
            KidInvalid => "the token's key id is not a string",
            TokenKindRefused => "the token is another kind of JWT (its typ or an events claim says so), not one accepted here",
            KeysNotLoaded => "the identity provider's keys are not loaded yet",
            KidUnknown => "no key of the identity provider has the token's key id",
            KeyAmbiguous => "the token has no key id and several keys could have signed it",
            KeyAlgMismatch => "no key of the identity provider fits the token's algorithm",
            SignatureInvalid => "the token's signature is not valid",
            IssMissing => "the token has no issuer",
            IssMismatch => "the token was issued by another issuer",
            AudMissing => "the token has no audience",
            AudMismatch => "the token is not meant for this application",
            AzpMismatch => "the token has several audiences and its authorized party is not this client",
            ExpMissing => "the token has no expiry",
            Expired => "the token has expired",
            NotYetValid => "the token is not valid yet",
            IatMissing => "the token has no issue time",
            IatInFuture => "the token was issued in the future",
            SubMissing => "the token has no subject",
            NonceMissing => "the ID token has no nonce",
            NonceMismatch => "the ID token's nonce is not the one this login sent",
            AtHashMismatch => "the ID token's at_hash does not match the access token",
            ClaimInvalid => "a claim of the token has the wrong type",
            StateMissing => "the login response has no state",
            StateUnknown => "the login response does not belong to a login started in this browser",
            StateReplayed => "the login response was already used",
            TransactionExpired => "the login took too long",
            IssParamMismatch => "the login response came from another issuer",
            IssParamMissing => "the login response has no issuer although the identity provider promises one",
            CodeMissing => "the login response has no authorization code",
            IdpError => "the identity provider refused the login",
            TokenEndpointFailed => "the identity provider's token endpoint did not answer with tokens",
            TokenResponseInvalid => "the identity provider's token response is not valid",
            IdTokenMissing => "the identity provider's token response has no ID token",
            SessionInvalid => "the session cookie is not valid",
            SessionExpired => "the session has expired",
            DiscoveryInvalid => "the identity provider's discovery document is not valid",
            DiscoveryIssuerMismatch => "the discovery document names another issuer than the configured one",
            JwksInvalid => "the identity provider's key set is not valid",
            FetchFailed => "the identity provider could not be reached",
            NotReady => "the identity provider's metadata and keys are not loaded yet",
            Forbidden => "the account does not satisfy the access rules of this application",
            OriginRefused => "a cookie-authenticated WebSocket from another origin is refused",
            Internal => "an internal error occurred",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for Reason {}
