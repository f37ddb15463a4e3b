//! The requests Exec, Attach and PortForward hand out URLs for: each
//! behind a single-use token that expires after a minute, at most 1000
//! waiting (kubelet's streaming server behaves so).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

/// How long a URL stays valid.
pub const TTL: Duration = Duration::from_secs(60);
/// How many URLs may wait for their client at once.
pub const MAX_IN_FLIGHT: usize = 1000;

/// A request waiting for its client to connect.
#[derive(Clone, Debug)]
pub enum Pending {
    /// `/exec/<token>`.
    Exec(cri::ExecRequest),
    /// `/attach/<token>`.
    Attach(cri::AttachRequest),
    /// `/portforward/<token>`.
    PortForward(cri::PortForwardRequest),
}

impl Pending {
    /// The URL path's first segment.
    pub fn kind(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

/// Too many URLs are waiting.
#[derive(Debug, thiserror::Error)]
#[error("streaming: {MAX_IN_FLIGHT} requests already wait for their clients")]
pub struct Full;

/// The waiting requests.
#[derive(Default)]
pub struct Tokens {
    waiting: Mutex<HashMap<String, (Instant, Pending)>>,
}

impl Tokens {
    /// Stores `p` under a new token.
    pub fn insert(&self, p: Pending) -> Result<String, Full> {
        self.insert_at(p, Instant::now())
    }

    fn insert_at(&self, p: Pending, now: Instant) -> Result<String, Full> {
        let mut w = self.waiting.lock().expect("tokens");
        w.retain(|_, (at, _)| now.duration_since(*at) < TTL);
        if w.len() >= MAX_IN_FLIGHT {
            return Err(Full);
        }
        // 128 random bits, URL-safe.
        let token = format!("{}{}", berth_rules::id::random(), berth_rules::id::random());
        w.insert(token.clone(), (now, p));
        Ok(token)
    }

    /// Takes the request of `token` if it is there, of `kind`, and fresh.
    pub fn consume(&self, kind: &str, token: &str) -> Option<Pending> {
        self.consume_at(kind, token, Instant::now())
    }

    fn consume_at(&self, kind: &str, token: &str, now: Instant) -> Option<Pending> {
        let mut w = self.waiting.lock().expect("tokens");
        match w.get(token) {
            Some((_, p)) if p.kind() != kind => return None,
            None => return None,
            _ => {}
        }
        let (at, p) = w.remove(token)?;
        (now.duration_since(at) < TTL).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Pending {
        Pending::Exec(cri::ExecRequest {
            container_id: "c".into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_token_is_used_once() {
        let t = Tokens::default();
        let tok = t.insert(exec()).unwrap();
        assert_eq!(tok.len(), 32);
        assert!(t.consume("attach", &tok).is_none(), "another kind's path");
        assert!(t.consume("exec", &tok).is_some());
        assert!(t.consume("exec", &tok).is_none());
    }

    #[test]
    fn a_token_expires() {
        let t = Tokens::default();
        let then = Instant::now();
        let tok = t.insert_at(exec(), then).unwrap();
        assert!(t.consume_at("exec", &tok, then + TTL).is_none());
    }

    #[test]
    fn at_most_a_thousand_wait() {
        let t = Tokens::default();
        for _ in 0..MAX_IN_FLIGHT {
            t.insert(exec()).unwrap();
        }
        assert!(t.insert(exec()).is_err());
        // Expired ones make room.
        assert!(t.insert_at(exec(), Instant::now() + TTL).is_ok());
    }
}
