//! Where webhooks may be sent (SSRF protection): an address is refused when it is in a denied
//! range, unless the operator allowed a range that holds it. Loopback, private, link-local,
//! shared (CGNAT), multicast and unspecified ranges are denied by default, so a webhook cannot
//! reach the server's own network; `--webhook-allow` opens ranges (a test's loopback receiver,
//! an internal endpoint), `--webhook-deny` closes more.
//!
//! The check is made on the addresses a request really goes to: an IP in the URL is checked
//! before sending, and a host name is resolved by [`FilteringResolver`], which hands the HTTP
//! client only allowed addresses (so a name cannot be re-pointed at a denied address between a
//! check and the connection).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// An IP range (`ADDRESS/PREFIX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(range), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(range) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(range), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(range) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or ADDRESS/PREFIX range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}': the prefix must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The ranges denied by default, with what they are.
const DENIED_BY_DEFAULT: [(&str, &str); 19] = [
    ("0.0.0.0/8", "an unspecified (\"this network\") address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    (
        "169.254.0.0/16",
        "a link-local address (cloud metadata services live here)",
    ),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible address (deprecated)"),
    (
        "64:ff9b:1::/48",
        "a local-use NAT64 address (it reaches an IPv4 address)",
    ),
    ("2002::/16", "a 6to4 address (it reaches an IPv4 network)"),
    ("fc00::/7", "a private (unique local) address"),
    ("fe80::/10", "a link-local address"),
    ("ff00::/8", "a multicast address"),
];

/// Which addresses webhooks may reach. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    /// Ranges opened by the operator (they win over every denial).
    pub allow: Vec<IpRange>,
    /// Ranges closed by the operator, besides the defaults.
    pub deny: Vec<IpRange>,
}

impl DestinationPolicy {
    /// `Err`: why a request may not go to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if self.allow.iter().any(|r| r.contains(ip)) {
            return Ok(());
        }
        if let Some(range) = self.deny.iter().find(|r| r.contains(ip)) {
            return Err(format!(
                "{ip} is in {range}, which this server denies (--webhook-deny)"
            ));
        }
        for (range, what) in DENIED_BY_DEFAULT {
            let range: IpRange = range.parse().expect("bug: the default ranges parse");
            if range.contains(ip) {
                return Err(format!(
                    "{ip} is {what}, which webhooks may not reach unless the operator allows it (--webhook-allow)"
                ));
            }
        }
        Ok(())
    }
}

/// The well-known NAT64 prefix (RFC 6052): `64:ff9b::a.b.c.d` reaches `a.b.c.d`.
const NAT64: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);

/// An IPv6 address that stands for an IPv4 one is that address: IPv4-mapped
/// (`::ffff:127.0.0.1`) and well-known NAT64 (`64:ff9b::10.0.0.1`, which a NAT64 gateway
/// forwards to `10.0.0.1`).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.segments()[..6] == NAT64.segments()[..6] => {
            let [.., a, b, c, d] = v6.octets();
            IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Resolves host names for the webhook client, keeping only the addresses the policy allows.
pub struct FilteringResolver(pub Arc<DestinationPolicy>);

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refusals.push(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                if refusals.is_empty() {
                    return Err(format!("{host}: it has no address").into());
                }
                // The addresses stay in the server's log: the error reaches the account's
                // delivery log, which must not map the operator's internal names.
                tracing::warn!(host, refused = ?refusals, "a webhook destination resolves only to denied addresses");
                return Err(format!("{host}: it resolves only to addresses webhooks may not reach (private, loopback, link-local, or denied by the operator); the server's log says which").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client webhooks are sent with: it connects only to addresses `policy` allows.
pub fn webhook_client(policy: Arc<DestinationPolicy>) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(FilteringResolver(policy))
        // A proxy would resolve the name itself, past the resolver's checks.
        .no_proxy()
        // A redirect could lead anywhere: webhooks are not redirected.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("bug: a client with a resolver builds")
}

/// `Err`: why a request to `url` may not be sent (an IP in it that the policy denies; names are
/// checked as they are resolved).
pub fn check_url(policy: &DestinationPolicy, url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) => policy.check(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => policy.check(IpAddr::V6(ip)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_and_loopback_addresses_are_denied_unless_allowed() {
        let policy = DestinationPolicy::default();
        for denied in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "::10.0.0.1",
        ] {
            assert!(policy.check(ip(denied)).is_err(), "{denied}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "2001:4860::8888",
            "100.128.0.1",
            "64:ff9b::8.8.8.8",
        ] {
            assert!(policy.check(ip(public)).is_ok(), "{public}");
        }
        let why = policy.check(ip("127.0.0.1")).unwrap_err();
        assert!(
            why.contains("loopback") && why.contains("--webhook-allow"),
            "{why}"
        );
        let policy = DestinationPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            deny: vec!["8.8.0.0/16".parse().unwrap()],
        };
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check(ip("10.0.0.1")).is_err());
        assert!(
            policy
                .check(ip("8.8.8.8"))
                .unwrap_err()
                .contains("--webhook-deny")
        );
        assert!(check_url(&policy, "http://127.0.0.1:9/x").is_ok());
        assert!(check_url(&DestinationPolicy::default(), "http://[::1]:9/x").is_err());
        assert!(check_url(&DestinationPolicy::default(), "https://example.com/x").is_ok());
    }

    #[tokio::test]
    async fn a_host_name_that_resolves_to_a_denied_address_is_not_connected_to() {
        let client = webhook_client(Arc::new(DestinationPolicy::default()));
        let error = client
            .get("http://localhost:9/hook")
            .send()
            .await
            .unwrap_err();
        let chain = format!("{error:?}");
        assert!(chain.contains("may not reach"), "{chain}");
        assert!(
            !chain.contains("127.0.0.1"),
            "the address stays in the log: {chain}"
        );
    }

    #[test]
    fn ranges_parse_with_clear_errors() {
        assert_eq!(
            "10.0.0.0/8".parse::<IpRange>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<IpRange>().unwrap().to_string(), "::1/128");
        assert!(
            "10.0.0.0/33"
                .parse::<IpRange>()
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!(
            "nonsense"
                .parse::<IpRange>()
                .unwrap_err()
                .contains("not an IP")
        );
        assert!(
            "0.0.0.0/0"
                .parse::<IpRange>()
                .unwrap()
                .contains(ip("1.2.3.4"))
        );
    }
}
