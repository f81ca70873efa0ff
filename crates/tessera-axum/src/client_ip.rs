//! The client's IP: the peer address, or — when the peer is a trusted proxy — the right-most
//! address in `X-Forwarded-For` that is not itself a trusted proxy.

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use std::net::{IpAddr, SocketAddr};
use tessera_core::net::IpNet;

pub(crate) fn client_ip(extensions: &Extensions, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    if !trusted.iter().any(|n| n.contains(peer)) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else { return Some(peer) };
        for hop in text.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A forged or garbled header: believe only the proxy.
                Err(_) => return Some(peer),
            }
        }
    }
    Some(hops.into_iter().rev().find(|ip| !trusted.iter().any(|n| n.contains(*ip))).unwrap_or(peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use axum::http::request::Parts;

    fn ip_of(parts: &Parts, trusted: &[IpNet]) -> Option<IpAddr> {
        client_ip(&parts.extensions, &parts.headers, trusted)
    }

    fn parts(peer: &str, xff: &[&str]) -> Parts {
        let mut req = Request::builder();
        for v in xff {
            req = req.header("x-forwarded-for", *v);
        }
        let (mut parts, ()) = req.body(()).unwrap_or_default().into_parts();
        let addr: SocketAddr = format!("{peer}:1234").parse().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        parts.extensions.insert(ConnectInfo(addr));
        parts
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|s| s.parse().ok()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(ip_of(&parts("1.2.3.4", &["9.9.9.9"]), &trusted), ip("1.2.3.4"), "untrusted peer");
        assert_eq!(ip_of(&parts("10.0.0.1", &["9.9.9.9"]), &trusted), ip("9.9.9.9"));
        assert_eq!(ip_of(&parts("10.0.0.1", &["6.6.6.6, 9.9.9.9, 10.0.0.2"]), &trusted), ip("9.9.9.9"));
        assert_eq!(ip_of(&parts("10.0.0.1", &["6.6.6.6", "9.9.9.9"]), &trusted), ip("9.9.9.9"));
        assert_eq!(ip_of(&parts("10.0.0.1", &[]), &trusted), ip("10.0.0.1"));
        assert_eq!(ip_of(&parts("10.0.0.1", &["garbage"]), &trusted), ip("10.0.0.1"));
        assert_eq!(ip_of(&parts("10.0.0.1", &["9.9.9.9"]), &[]), ip("10.0.0.1"), "no trusted proxies");
        let (no_peer, ()) = Request::builder().body(()).unwrap_or_default().into_parts();
        assert_eq!(ip_of(&no_peer, &trusted), None);
    }
}
