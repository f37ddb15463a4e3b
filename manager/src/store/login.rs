//! `login`'s check: do these credentials open this registry? As dockerd
//! does it: `GET /v2/` tells how the registry authenticates; Basic
//! credentials are tried on `/v2/` itself, Bearer ones on the token server
//! the challenge names.

use std::time::Duration;

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The registry refused the credentials.
    #[error("login to {server}: unauthorized: incorrect username or password")]
    Unauthorized {
        /// The registry.
        server: String,
    },
    /// The registry could not be reached or answered nonsense.
    #[error("login to {server}: {why}")]
    Unreachable {
        /// The registry.
        server: String,
        /// What failed.
        why: String,
    },
}

/// The parameters of a `WWW-Authenticate: Bearer realm=..,service=..` header.
pub fn bearer_params(header: &str) -> Option<(String, String)> {
    let rest = header.trim().strip_prefix("Bearer ")?;
    let mut realm = None;
    let mut service = String::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim_matches('"').to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v),
            "service" => service = v,
            _ => {}
        }
    }
    Some((realm?, service))
}

/// Checks `username`/`password` against `server` (plain HTTP when
/// `plain_http`). A registry that asks for nothing accepts any login.
pub async fn verify(
    server: &str,
    username: &str,
    password: &str,
    plain_http: bool,
) -> Result<(), LoginError> {
    let unreachable = |why: String| LoginError::Unreachable {
        server: server.into(),
        why,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let base = format!(
        "{}://{server}/v2/",
        if plain_http { "http" } else { "https" }
    );
    let anon = client
        .get(&base)
        .send()
        .await
        .map_err(|e| unreachable(format!("GET {base}: {e}")))?;
    if anon.status().is_success() {
        return Ok(());
    }
    if anon.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(unreachable(format!("GET {base}: {}", anon.status())));
    }
    let challenge = anon
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let answer = if let Some((realm, service)) = bearer_params(&challenge) {
        client
            .get(&realm)
            .query(&[("service", service.as_str()), ("account", username)])
            .basic_auth(username, Some(password))
            .send()
            .await
            .map_err(|e| unreachable(format!("GET {realm}: {e}")))?
    } else if challenge
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("basic")
    {
        client
            .get(&base)
            .basic_auth(username, Some(password))
            .send()
            .await
            .map_err(|e| unreachable(format!("GET {base}: {e}")))?
    } else {
        return Err(unreachable(format!(
            "the registry asks for an authentication berth does not speak: {challenge:?}"
        )));
    };
    match answer.status() {
        s if s.is_success() => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
            Err(LoginError::Unauthorized {
                server: server.into(),
            })
        }
        s => Err(unreachable(format!("authentication answered {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read() {
        assert_eq!(
            bearer_params(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="x""#
            ),
            Some((
                "https://auth.example/token".into(),
                "registry.example".into()
            ))
        );
        assert_eq!(bearer_params(r#"Basic realm="r""#), None);
    }
}
