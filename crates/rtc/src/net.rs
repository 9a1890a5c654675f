//! Addresses: which local IP a peer should offer as its host candidate.

use std::net::{IpAddr, SocketAddr};

/// The local IP that routes to the host of `url` (`scheme://host[:port]/…`): a client binds its
/// media socket there, so a server on the same network reaches its host candidate.
pub async fn local_ip_towards(url: &str) -> std::io::Result<IpAddr> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split('/').next())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid(format!("'{url}' has no host")))?;
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']');
    let with_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let target = tokio::net::lookup_host(&with_port)
        .await?
        .next()
        .ok_or_else(|| invalid(format!("{authority} has no address")))?;
    let unspecified: IpAddr = if target.is_ipv4() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([0u16; 8])
    };
    let probe = tokio::net::UdpSocket::bind(SocketAddr::new(unspecified, 0)).await?;
    // connect() on UDP sends nothing; it only picks the route, and so the local address.
    probe.connect(target).await?;
    Ok(probe.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_ip_towards_loopback_is_loopback() {
        let ip = local_ip_towards("http://127.0.0.1:9/recording/entry/x")
            .await
            .expect("loopback routes");
        assert!(ip.is_loopback());
        assert!(local_ip_towards("http:///x").await.is_err());
    }
}
