//! The SSRF guard: where a webhook may point, checked when it is subscribed and again on the
//! resolved address of every connection.
//!
//! - `https://` only, or `http://` to a host the operator lists
//!   (`GATEHOUSE_WEBHOOK_ALLOW_HTTP_HOSTS`); no credentials in the URL.
//! - Addresses that reach the operator's own network are refused: private (10/8, 172.16/12,
//!   192.168/16), loopback, link-local (169.254/16, where cloud metadata lives; fe80::/10),
//!   CGNAT (100.64/10), unique-local (fc00::/7), multicast, broadcast, unspecified, reserved
//!   and documentation ranges, and every IPv6 form that embeds an IPv4 address
//!   (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
//!   `2002::/16`, Teredo `2001::/32`) — unless the URL's host is listed.
//! - The HTTP client resolves names through [`GuardedResolver`], which drops refused
//!   addresses from every answer, so a name that resolves to a public address when it is
//!   subscribed and to 127.0.0.1 later (DNS rebinding) gets no connection. An IP literal is
//!   checked before each request ([`check_target`]): the client does not resolve those.
//! - The client follows no redirect and uses no proxy (a proxy would resolve the name itself).
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Hosts (names or IP literals, lower case) that may use `http://` and any address.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Arc<HashSet<String>>);

impl AllowList {
    /// From the setting's entries (trimmed, lower-cased, `[` `]` around IPv6 removed).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(hosts: I) -> Self {
        Self(Arc::new(
            hosts
                .into_iter()
                .map(|h| normalise_host(h.as_ref()))
                .filter(|h| !h.is_empty())
                .collect(),
        ))
    }

    /// Whether `host` is listed.
    pub fn contains(&self, host: &str) -> bool {
        self.0.contains(&normalise_host(host))
    }

    /// The listed hosts, sorted.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.0.iter().cloned().collect();
        hosts.sort();
        hosts
    }
}

fn normalise_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Why a URL or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a URL.
    #[error("not an absolute URL")]
    Malformed,
    /// A scheme other than https (or http to a listed host).
    #[error("only https URLs are accepted (http only to hosts listed in GATEHOUSE_WEBHOOK_ALLOW_HTTP_HOSTS)")]
    Scheme,
    /// User name or password in the URL.
    #[error("credentials in the URL are not accepted")]
    Credentials,
    /// An address of the operator's network.
    #[error("the address {0} is private, loopback, link-local or otherwise not public (list the host in GATEHOUSE_WEBHOOK_ALLOW_HTTP_HOSTS to allow it)")]
    Address(IpAddr),
    /// A name that resolved to no public address.
    #[error("{0} resolves to no public address")]
    NoPublicAddress(String),
}

/// Whether an address is refused (see the module docs).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique-local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || s[0] == 0x2002 // 6to4
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64
        // IPv4-mapped ::ffff:0:0/96 and IPv4-compatible ::/96: an IPv4 address in disguise.
        || (s[..5].iter().all(|&x| x == 0) && (s[5] == 0 || s[5] == 0xffff))
}

/// Checks a subscription's URL: scheme, credentials, and the host when it is an IP literal.
/// (A name is checked on every connection, when it resolves.) Answers the parsed URL.
pub fn check_url(raw: &str, allow: &AllowList) -> Result<Url, Refused> {
    let url = Url::parse(raw.trim()).map_err(|_| Refused::Malformed)?;
    let host = url.host_str().ok_or(Refused::Malformed)?.to_string();
    if url.cannot_be_a_base() {
        return Err(Refused::Malformed);
    }
    let listed = allow.contains(&host);
    match url.scheme() {
        "https" => {}
        "http" if listed => {}
        _ => return Err(Refused::Scheme),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    check_target(&url, allow)?;
    Ok(url)
}

/// The check of an IP-literal host before each request (names are checked by the resolver).
pub fn check_target(url: &Url, allow: &AllowList) -> Result<(), Refused> {
    let Some(host) = url.host_str() else {
        return Err(Refused::Malformed);
    };
    if allow.contains(host) {
        return Ok(());
    }
    let literal = normalise_host(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if forbidden(ip) {
            return Err(Refused::Address(ip));
        }
    }
    Ok(())
}

/// A resolver that drops refused addresses (unless the name is listed): the client connects
/// only to what is left, and to nothing when nothing is.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: AllowList,
}

impl GuardedResolver {
    /// Over the system resolver.
    pub fn new(allow: AllowList) -> Self {
        Self { allow }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let listed = allow.contains(&host);
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| listed || !forbidden(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(Refused::NoPublicAddress(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_private_and_embedded_addresses_are_forbidden() {
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
        ] {
            assert!(forbidden(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "100.128.0.1",
        ] {
            assert!(!forbidden(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn test_urls_need_https_or_a_listed_host() {
        let none = AllowList::default();
        let listed = AllowList::new(["127.0.0.1", " Hooks.Internal "]);
        assert!(check_url("https://hooks.example.com/in", &none).is_ok());
        assert_eq!(
            check_url("http://hooks.example.com/in", &none),
            Err(Refused::Scheme)
        );
        assert_eq!(check_url("ftp://x.example/", &none), Err(Refused::Scheme));
        assert_eq!(check_url("not a url", &none), Err(Refused::Malformed));
        assert_eq!(
            check_url("https://user:pw@hooks.example.com/", &none),
            Err(Refused::Credentials)
        );
        for bad in [
            "https://127.0.0.1/",
            "https://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:127.0.0.1]/",
            "https://[::1]:8443/",
            "https://2130706433/", // 127.0.0.1 as a number
            "https://0x7f.1/",
        ] {
            assert!(
                matches!(check_url(bad, &none), Err(Refused::Address(_))),
                "{bad}: {:?}",
                check_url(bad, &none)
            );
        }
        assert!(check_url("http://127.0.0.1:8080/hook", &listed).is_ok());
        assert!(check_url("http://hooks.internal/x", &listed).is_ok());
        assert!(check_url("http://10.0.0.1/", &listed).is_err());
    }

    #[tokio::test]
    async fn test_the_resolver_drops_loopback_answers_unless_listed() {
        let guarded = GuardedResolver::new(AllowList::default());
        let name: Name = "localhost".parse().unwrap();
        assert!(guarded.resolve(name).await.is_err());
        let listed = GuardedResolver::new(AllowList::new(["localhost"]));
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = listed.resolve(name).await.unwrap().collect();
        assert!(!addrs.is_empty());
    }
}
