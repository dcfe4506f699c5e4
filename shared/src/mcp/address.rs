//! Which servers may be reached (SSRF rules). A server's URL is checked when it is registered and
//! again, after DNS, on every connection: the client's resolver answers only allowed addresses, so
//! a name that later resolves to 169.254.169.254 or a private range cannot be reached. Literal
//! addresses skip DNS and are checked by [`check_url`] before each request. No proxy is used (one
//! would resolve the name itself), and redirects stay on the server's own origin.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// The longest server URL taken.
pub const MAX_URL_CHARS: usize = 2048;

#[derive(Debug, Clone, Copy)]
pub struct AddressRules {
    /// Loopback `http://` servers (the local profile); otherwise https to public addresses only.
    pub allow_loopback: bool,
}

impl AddressRules {
    /// Whether a connection may go to `ip`: a public unicast address, or loopback when allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        match ip {
            IpAddr::V4(v4) => public_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| nat64(v6)) {
                Some(v4) if v4.is_loopback() => self.allow_loopback,
                Some(v4) => public_v4(v4),
                None => public_v6(v6),
            },
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32, discard 100::/64.
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
        // IPv4-compatible (deprecated) ::a.b.c.d.
        || (s[..6] == [0; 6]))
}

/// The IPv4 address inside a NAT64 address (64:ff9b::/96), which reaches that address.
fn nat64(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let o = ip.octets();
        Ipv4Addr::new(o[12], o[13], o[14], o[15])
    })
}

/// Parses and checks a server URL: https (or loopback http when allowed), no credentials in it, no
/// fragment, and a literal address only where [`AddressRules::allows`] it. Names are checked when
/// resolved. The message says what is wrong, for the `url` field.
pub fn check_url(raw: &str, rules: AddressRules) -> Result<Url, String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let url = Url::parse(raw.trim()).map_err(|e| format!("is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; send them as headers".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    let host = url.host().ok_or("must name a host")?;
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    };
    let loopback = match literal {
        Some(ip) => ip.is_loopback(),
        None => url
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case("localhost")),
    };
    match url.scheme() {
        "https" => {}
        "http" if rules.allow_loopback && loopback => {}
        "http" if rules.allow_loopback => {
            return Err("must be https (http only for a loopback server)".into())
        }
        _ => return Err("must be an https URL".into()),
    }
    if let Some(ip) = literal {
        if !rules.allows(ip) {
            return Err(format!(
                "must reach a public address, not {ip} (loopback, private, link-local and reserved ranges are refused)"
            ));
        }
    }
    Ok(url)
}

/// `host`'s addresses that the rules allow; none is an error naming why.
async fn allowed_addresses(host: &str, rules: AddressRules) -> Result<Vec<SocketAddr>, String> {
    let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| format!("names a host that does not resolve ({host})"))?
        .filter(|a| rules.allows(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(format!(
            "names a host that resolves to no public address ({host})"
        ));
    }
    Ok(allowed)
}

/// In the lambda profile a server's host must resolve, and to allowed addresses (the resolver
/// checks again at every connection; this names the cause, which the transport's error loses);
/// locally (loopback allowed) names are resolved when used.
pub(super) async fn check_resolves(url: &Url, rules: AddressRules) -> Result<(), String> {
    match url.host() {
        Some(url::Host::Domain(host)) if !rules.allow_loopback => {
            allowed_addresses(host, rules).await.map(|_| ())
        }
        _ => Ok(()),
    }
}

/// The client's resolver: resolves as the system does, then keeps only the allowed addresses; a
/// name with none left does not connect.
pub(super) struct CheckedResolver(pub AddressRules);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let allowed = allowed_addresses(&host, rules).await?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Follows a redirect only on the same origin (scheme, host and port), at most five times; the
/// server's headers never reach another host.
pub(super) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().cloned();
        let same = first.is_some_and(|f| f.origin() == attempt.url().origin());
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if same {
            attempt.follow()
        } else {
            attempt.error("a redirect to another host is not followed")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: AddressRules = AddressRules {
        allow_loopback: false,
    };
    const LOCAL: AddressRules = AddressRules {
        allow_loopback: true,
    };

    #[test]
    fn only_public_unicast_addresses_are_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!STRICT.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(STRICT.allows(ip.parse().unwrap()), "{ip}");
        }
        assert!(LOCAL.allows("127.0.0.1".parse().unwrap()));
        assert!(LOCAL.allows("::1".parse().unwrap()));
        assert!(!LOCAL.allows("169.254.169.254".parse().unwrap()));
        assert!(!LOCAL.allows("192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn urls_are_https_without_credentials_or_private_literals() {
        assert!(check_url("https://mcp.example.com/mcp", STRICT).is_ok());
        for bad in [
            "http://mcp.example.com/mcp",
            "http://127.0.0.1:8000/mcp",
            "https://169.254.169.254/latest",
            "https://[::1]/mcp",
            "https://user:pw@mcp.example.com/mcp",
            "https://mcp.example.com/mcp#x",
            "ftp://mcp.example.com/",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad, STRICT).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:8000/mcp", LOCAL).is_ok());
        assert!(check_url("http://localhost:8000/mcp", LOCAL).is_ok());
        assert!(check_url("http://mcp.example.com/mcp", LOCAL).is_err());
        assert!(check_url("http://10.0.0.1/mcp", LOCAL).is_err());
        assert!(check_url(
            &format!("https://a.example/{}", "x".repeat(MAX_URL_CHARS)),
            STRICT
        )
        .is_err());
    }

    #[tokio::test]
    async fn the_resolver_answers_only_allowed_addresses() {
        use reqwest::dns::Resolve;
        let name = |s: &str| s.parse::<reqwest::dns::Name>().unwrap();
        let refused = CheckedResolver(STRICT).resolve(name("localhost")).await;
        assert!(refused.is_err());
        let found: Vec<_> = CheckedResolver(LOCAL)
            .resolve(name("localhost"))
            .await
            .unwrap()
            .collect();
        assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback()));
    }
}
