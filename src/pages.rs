//! The responses the filter writes itself: short error pages for people, JSON and RFC 6750 challenges for programs.

use crate::error::Reason;
use crate::http::LocalResponse;

/// Headers every locally generated page carries: nothing cached, nothing leaked in
/// `Referer`, nothing framed or scripted.
fn page_headers(content_type: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), content_type.into()),
        ("cache-control".into(), "no-store".into()),
        ("referrer-policy".into(), "no-referrer".into()),
        ("x-content-type-options".into(), "nosniff".into()),
        ("content-security-policy".into(), "default-src 'none'; style-src 'unsafe-inline'".into()),
        ("x-frame-options".into(), "DENY".into()),
    ]
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A short HTML page: what failed, what to try, and a code to quote to an operator.
pub fn error_page(status: u16, title: &str, what: &str, try_this: &str, reason: Reason) -> LocalResponse {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}\
code{{background:#eee;padding:0 .3em}}</style></head><body>\
<h1>{title}</h1><p>{what}</p><p>{try_this}</p><p><small>Error code: <code>{code}</code></small></p></body></html>\n",
        title = escape_html(title),
        what = escape_html(what),
        try_this = try_this,
        code = reason.code(),
    );
    LocalResponse { status, headers: page_headers("text/html; charset=utf-8"), body }
}

/// A redirect the filter answers itself: never cached, and no `Referer` (our URL, its
/// query) for the next site.
pub fn redirect(location: String) -> LocalResponse {
    LocalResponse {
        status: 302,
        headers: vec![("location".into(), location), ("cache-control".into(), "no-store".into()), ("referrer-policy".into(), "no-referrer".into())],
        body: String::new(),
    }
}

/// 405 for the filter's own addresses (callback, login initiation), which are links.
pub fn method_not_allowed(allow: &str) -> LocalResponse {
    let mut page = error_page(
        405,
        "Sign-in failed",
        "This address of the sign-in is only opened as a link (GET).",
        "Please <a href=\"/\">start again</a>.",
        Reason::MethodNotAllowed,
    );
    page.headers.push(("allow".into(), allow.into()));
    page
}

/// 400 for a path whose decoded form belongs to another route than its form as sent.
pub fn ambiguous_path() -> LocalResponse {
    error_page(
        400,
        "Bad request",
        "The address's path could belong to more than one part of this site (encoded slashes or dots, or a name that only starts like another part's), so it cannot be checked.",
        "Use the address without encoded characters in its path. If this address is correct, tell the site's administrator (the gateway's log says which route).",
        Reason::PathAmbiguous,
    )
}

/// 400 for a host whose spelling as sent (a port, a trailing dot) belongs to another route
/// than its plain name.
pub fn ambiguous_host() -> LocalResponse {
    error_page(
        400,
        "Bad request",
        "The address's host name, as your browser sent it (with a port or a trailing dot), could belong to more than one part of this site, so it cannot be checked.",
        "Use the address without a port or a trailing dot after the host name. If this address is correct, tell the site's administrator (the gateway's log says why).",
        Reason::HostAmbiguous,
    )
}

/// A failed login: the page tells the user to start over from the application's root.
/// `again`: the link that starts over (a new login back to the page the user wanted, when known).
pub fn login_failed(status: u16, reason: Reason, what: &str, again: &str) -> LocalResponse {
    error_page(
        status,
        "Sign-in failed",
        what,
        &format!(
            "Please <a href=\"{}\">start again</a>. If this keeps happening, contact the site's administrator and quote the code below.",
            escape_html(again)
        ),
        reason,
    )
}

/// The claims do not satisfy `require`: a page for people, JSON for programs.
/// `bearer`: the identity came from a bearer token, so the answer carries RFC 6750's
/// `insufficient_scope` challenge (3.1): the token is valid, its claims are not enough.
pub fn forbidden(browser: bool, bearer: bool) -> LocalResponse {
    let mut resp = if browser {
        error_page(
            403,
            "Access denied",
            "You are signed in, but your account is not allowed to use this application.",
            "If you think this is wrong, ask the site's administrator for access, quoting the code below.",
            Reason::Forbidden,
        )
    } else {
        let error = if bearer { "insufficient_scope" } else { "forbidden" };
        LocalResponse {
            status: 403,
            headers: page_headers("application/json"),
            body: format!("{{\"error\":\"{error}\",\"error_description\":\"{}\"}}\n", Reason::Forbidden.describe()),
        }
    };
    if bearer {
        resp.headers.push((
            "www-authenticate".into(),
            format!("Bearer realm=\"oidc-edge\", error=\"insufficient_scope\", error_description=\"{}\"", Reason::Forbidden.describe()),
        ));
    }
    resp
}

/// A WebSocket opened with the session cookie from another site's page (CSWSH).
pub fn forbidden_origin() -> LocalResponse {
    LocalResponse {
        status: 403,
        headers: page_headers("application/json"),
        body: format!("{{\"error\":\"forbidden\",\"error_description\":\"{}\"}}\n", Reason::OriginRefused.describe()),
    }
}

/// Logout asked for by a request that does not show it comes from this site: a button
/// that posts the logout from here instead of logging out on another site's behalf.
pub fn logout_confirm(path: &str) -> LocalResponse {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign out</title></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:36em;margin:4em auto\"><h1>Sign out?</h1>\
<form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form></body></html>\n",
        escape_html(path)
    );
    LocalResponse { status: 200, headers: page_headers("text/html; charset=utf-8"), body }
}

/// The end of a login under `cookie_same_site: strict`: a page that goes on to `location`
/// (a same-origin path), by itself when `by_itself`, so that the next request is this
/// site's own navigation and carries the `Strict` session cookie; else (and for browsers
/// that ignore refresh) by the user's click.
pub fn continue_to(location: &str, by_itself: bool) -> LocalResponse {
    let url = escape_html(location);
    let refresh = if by_itself { format!("<meta http-equiv=\"refresh\" content=\"0;url={url}\">") } else { String::new() };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
{refresh}<title>Signed in</title></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:36em;margin:4em auto\">\
<p>Signed in. <a href=\"{url}\">Continue</a></p></body></html>\n"
    );
    LocalResponse { status: 200, headers: page_headers("text/html; charset=utf-8"), body }
}

/// RFC 6750 3: a 401 with a `Bearer` challenge and a small JSON body.
pub fn unauthorized(reason: Option<Reason>) -> LocalResponse {
    let (challenge, body) = match reason {
        None => (
            "Bearer realm=\"oidc-edge\"".to_string(),
            "{\"error\":\"unauthorized\",\"error_description\":\"authentication required\"}\n".to_string(),
        ),
        Some(r) => (
            format!("Bearer realm=\"oidc-edge\", error=\"invalid_token\", error_description=\"{}\"", r.describe()),
            format!("{{\"error\":\"invalid_token\",\"error_description\":\"{}\",\"code\":\"{}\"}}\n", r.describe(), r.code()),
        ),
    };
    let mut headers = page_headers("application/json");
    headers.push(("www-authenticate".into(), challenge));
    LocalResponse { status: 401, headers, body }
}

/// 401 for a form submitted without a (valid) session: a redirect would lose what was
/// sent, so the page says so and links to a sign-in that returns to `return_to`.
pub fn sign_in_to_resubmit(login_href: &str) -> LocalResponse {
    let mut page = error_page(
        401,
        "Please sign in again",
        "You are not signed in (or your session has ended), so what you just submitted was not sent.",
        &format!("<a href=\"{}\">Sign in</a>, then submit it again.", escape_html(login_href)),
        Reason::SessionExpired,
    );
    page.headers.push(("www-authenticate".into(), "Bearer realm=\"oidc-edge\"".into()));
    page
}

/// Not ready to decide (metadata or keys not loaded): fail closed, and say when to retry.
pub fn not_ready(api: bool, retry_after: u64) -> LocalResponse {
    let mut resp = if api {
        let mut r = unauthorized(None);
        r.body = format!("{{\"error\":\"temporarily_unavailable\",\"error_description\":\"{}\"}}\n", Reason::NotReady.describe());
        r
    } else {
        error_page(
            503,
            "Sign-in is not available yet",
            "The gateway has not yet loaded the identity provider's settings and keys.",
            "This page tries again by itself in a few seconds.",
            Reason::NotReady,
        )
    };
    resp.headers.push(("retry-after".into(), retry_after.to_string()));
    if !api {
        // Browsers reload the page after that many seconds (HTML's `Refresh`).
        resp.headers.push(("refresh".into(), retry_after.to_string()));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_and_carry_safety_headers() {
        let p = error_page(400, "<t>", "a & b", "x", Reason::StateMissing);
        assert!(p.body.contains("&lt;t&gt;") && p.body.contains("a &amp; b") && p.body.contains("state_missing"));
        assert!(p.headers.iter().any(|(n, v)| n == "cache-control" && v == "no-store"));
        let u = unauthorized(Some(Reason::Expired));
        let www = &u.headers.iter().find(|(n, _)| n == "www-authenticate").unwrap().1;
        assert!(www.contains("error=\"invalid_token\"") && www.contains("expired"));
        let n = not_ready(false, 5);
        assert_eq!(n.status, 503);
        assert!(n.headers.iter().any(|(k, v)| k == "retry-after" && v == "5"));
        assert!(n.headers.iter().any(|(k, v)| k == "refresh" && v == "5"), "the browser retries by itself");
        assert_eq!(not_ready(true, 5).status, 401);
        assert!(!not_ready(true, 5).headers.iter().any(|(k, _)| k == "refresh"));
        let c = continue_to("/a?x=\"><script>&y", true);
        assert_eq!(c.status, 200);
        assert!(!c.body.contains("<script>") && c.body.contains("url=/a?x=&quot;&gt;&lt;script&gt;&amp;y\""), "{}", c.body);
        let c = continue_to("/a", false);
        assert!(!c.body.contains("http-equiv") && c.body.contains("href=\"/a\""), "only a link: {}", c.body);
    }
}
