//! How a streaming client asks to upgrade its HTTP/1.1 connection, and
//! which protocol version it gets: SPDY/3.1 with `X-Stream-Protocol-Version`
//! headers, or WebSocket with `Sec-WebSocket-Protocol`. Pure: the server
//! answers from what this decides.

use http::HeaderMap;

/// remotecommand over SPDY, newest first (kubelet's list).
pub const SPDY_EXEC: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// Port-forward over SPDY.
pub const SPDY_PORT_FORWARD: &[&str] = &["portforward.k8s.io"];
/// remotecommand over WebSocket (the base64 variants are for browsers).
pub const WS_EXEC: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];
/// Port-forward over WebSocket: SPDY tunnelled in binary messages
/// (client-go's and crictl's), or channels per port.
pub const WS_PORT_FORWARD: &[&str] = &[
    "SPDY/3.1+portforward.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "portforward.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// The upgrade a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// SPDY/3.1 with this protocol version ("" when the client named none:
    /// the oldest).
    Spdy(String),
    /// WebSocket with this subprotocol ("" when the client named none),
    /// and the `Sec-WebSocket-Accept` answer.
    WebSocket {
        /// The chosen subprotocol.
        protocol: String,
        /// The key's answer.
        accept: String,
    },
}

/// Why a request cannot be upgraded, with the HTTP status it gets.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Neither SPDY nor WebSocket was asked for.
    #[error("streaming: the request asks for no SPDY/3.1 or websocket upgrade")]
    NoUpgrade,
    /// No protocol version in common.
    #[error("streaming: none of the protocols {offered:?} is spoken here (only {spoken:?})")]
    Protocol {
        /// What the client offered.
        offered: Vec<String>,
        /// What is spoken.
        spoken: Vec<String>,
    },
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn has_token(h: &HeaderMap, name: &str, token: &str) -> bool {
    values(h, name)
        .iter()
        .any(|v| v.eq_ignore_ascii_case(token))
}

/// The first protocol the client offers that is spoken (the client's order,
/// as kubelet negotiates).
fn pick(offered: &[String], spoken: &[&str]) -> Result<String, Refused> {
    if offered.is_empty() {
        return Ok(String::new());
    }
    offered
        .iter()
        .find(|o| spoken.contains(&o.as_str()))
        .cloned()
        .ok_or_else(|| Refused::Protocol {
            offered: offered.to_vec(),
            spoken: spoken.iter().map(|s| s.to_string()).collect(),
        })
}

/// Decides the upgrade for a request with headers `h` to an endpoint that
/// speaks `spdy` over SPDY and `ws` over WebSocket.
pub fn negotiate(h: &HeaderMap, spdy: &[&str], ws: &[&str]) -> Result<Upgrade, Refused> {
    if !has_token(h, "connection", "upgrade") {
        return Err(Refused::NoUpgrade);
    }
    if has_token(h, "upgrade", "websocket") {
        let key = h
            .get("sec-websocket-key")
            .ok_or(Refused::NoUpgrade)?
            .as_bytes();
        let protocol = pick(&values(h, "sec-websocket-protocol"), ws)?;
        return Ok(Upgrade::WebSocket {
            protocol,
            accept: tokio_tungstenite::tungstenite::handshake::derive_accept_key(key),
        });
    }
    if has_token(h, "upgrade", "SPDY/3.1") {
        return Ok(Upgrade::Spdy(pick(
            &values(h, "x-stream-protocol-version"),
            spdy,
        )?));
    }
    Err(Refused::NoUpgrade)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn spdy_takes_the_clients_first_spoken_version() {
        let h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v5.channel.k8s.io"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "channel.k8s.io"),
        ]);
        assert_eq!(
            negotiate(&h, SPDY_EXEC, WS_EXEC),
            Ok(Upgrade::Spdy("v4.channel.k8s.io".into()))
        );
        let none = headers(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")]);
        assert_eq!(
            negotiate(&none, SPDY_EXEC, WS_EXEC),
            Ok(Upgrade::Spdy("".into()))
        );
        let pf = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]);
        assert!(matches!(
            negotiate(&pf, SPDY_PORT_FORWARD, WS_PORT_FORWARD),
            Err(Refused::Protocol { .. })
        ));
    }

    #[test]
    fn websocket_answers_the_key_and_picks_a_subprotocol() {
        // RFC 6455's example key and answer.
        let h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            (
                "sec-websocket-protocol",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            ),
        ]);
        assert_eq!(
            negotiate(&h, SPDY_EXEC, WS_EXEC),
            Ok(Upgrade::WebSocket {
                protocol: "v5.channel.k8s.io".into(),
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
            })
        );
    }

    #[test]
    fn a_plain_request_is_refused() {
        assert_eq!(
            negotiate(&headers(&[]), SPDY_EXEC, WS_EXEC),
            Err(Refused::NoUpgrade)
        );
    }
}
