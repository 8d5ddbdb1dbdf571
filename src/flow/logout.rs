//! RP-initiated logout: clear every cookie of the filter, then the IdP's end-session endpoint.

use super::{Context, Decision, Event, Rp};
use crate::http::form_encode;
use crate::pages;
use crate::request::RequestView;
use crate::session::cookies;

/// Above this, `id_token_hint` is left out of the logout redirect: a request line that
/// long is refused by many IdPs and their front proxies (nginx 8 KB, Keycloak's 4 KB
/// initial line), which would leave the IdP session alive. `client_id` still names the
/// client, which is what `post_logout_redirect_uri` needs.
const MAX_ID_TOKEN_HINT: usize = 4096;

/// Whether the request shows it comes from this site (or a person typing the URL), not
/// from another site's page. Browsers send `Sec-Fetch-Site`; older ones `Origin` or
/// `Referer`; a client sending none of them is not a browser, hence no CSRF victim.
fn same_origin_intent(req: &RequestView) -> bool {
    let own = Rp::origin(req);
    if let Some(site) = req.header_str("sec-fetch-site") {
        return matches!(site.trim().to_ascii_lowercase().as_str(), "same-origin" | "none");
    }
    if let Some(origin) = req.header_str("origin") {
        return origin.trim().eq_ignore_ascii_case(&own);
    }
    if let Some(referer) = req.header_str("referer") {
        let referer = referer.trim();
        return referer.eq_ignore_ascii_case(&own) || Rp::path_on_own_origin(req, referer).is_some();
    }
    true
}

/// Clears `rp`'s session and login cookies this request carries, and forgets its verdict.
fn clear_sessions(rp: &Rp<'_>, req: &RequestView, headers: &mut Vec<(String, String)>) {
    let names = rp.names(req);
    let cookies = req.cookies();
    for name in cookies::session_cookie_names(cookies, &names.session) {
        headers.extend(cookies::clear_session_cookie(&name, &names.attrs).into_iter().map(|c| ("set-cookie".to_string(), c)));
    }
    for (name, _) in cookies.iter().filter(|(n, _)| super::login::is_tx_cookie(n, &names.tx_prefix)) {
        headers.push(("set-cookie".into(), cookies::clear_cookie(name, &names.attrs)));
    }
    if let Some(sealed) = cookies::join(cookies, &names.session) {
        rp.engine.cache(rp.index, |c| c.remove(&rp.engine.cache_key(sealed.as_bytes())));
    }
}

pub fn handle(rp: &Rp<'_>, req: &RequestView, cx: &mut Context<'_>) -> Decision {
    if !same_origin_intent(req) {
        // A cross-site request cannot log the user out; offer a button that posts from here.
        return Decision::Respond(pages::logout_confirm(&rp.profile.logout_path));
    }
    let session = super::session::open_even_expired(rp, req);
    let mut headers = vec![
        // The pages seen while signed in stay in the browser's caches (the back/forward
        // cache included), where Back would show them to the next person at this computer
        // (OWASP ASVS 8.2.1). Browsers honour this over https and on localhost only.
        ("clear-site-data".to_string(), "\"cache\"".to_string()),
    ];
    clear_sessions(rp, req, &mut headers);
    // Routes of this host that share the logout path end too: a user who signs out of the
    // site expects to be signed out of all of it, whichever route's page the link was on.
    // Only this route's IdP can be visited on the way out.
    for other in rp.engine.settings.profiles_for_host(&req.authority).into_iter().filter_map(|i| rp.engine.rp(i)) {
        let sibling = other.index != rp.index && other.profile.cookie.name != rp.profile.cookie.name;
        if sibling && other.profile.logout_path == rp.profile.logout_path {
            clear_sessions(&other, req, &mut headers);
        }
    }
    let post_logout = rp.profile.post_logout_redirect_uri.clone().unwrap_or_else(|| format!("{}/", Rp::origin(req)));
    let end_session = rp.view(cx).and_then(|v| v.metadata.as_ref()).and_then(|m| m.end_session_endpoint.clone());
    let location = match end_session {
        Some(endpoint) => {
            let mut params: Vec<(&str, &str)> = vec![("client_id", &rp.profile.client_id), ("post_logout_redirect_uri", &post_logout)];
            if let Some(s) = session.as_ref().filter(|s| s.id_token.len() <= MAX_ID_TOKEN_HINT) {
                params.insert(0, ("id_token_hint", &s.id_token));
            }
            endpoint.with_query(&form_encode(&params))
        }
        None => post_logout,
    };
    let mut out = pages::redirect(location);
    out.headers.extend(headers);
    cx.events.push(Event::Logout);
    Decision::Respond(out)
}
