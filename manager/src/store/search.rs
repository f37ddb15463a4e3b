//! `search`: repositories of a registry matching a term, as `docker search`
//! finds them: the registry's search API (`/v1/search`, Docker Hub's), else
//! the distribution API's `/v2/_catalog`, filtered by the term. A registry
//! that offers neither says so.

use std::time::Duration;

/// One repository found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// `registry/repository` (Docker Hub's without its host, as docker shows).
    pub name: String,
    /// Its description (the search API's; the catalog has none).
    pub description: String,
    /// Stars (the search API's).
    pub stars: u32,
    /// An official image (the search API's).
    pub official: bool,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
#[error("search {registry}: {why}")]
pub struct SearchError {
    /// The registry.
    pub registry: String,
    /// What failed.
    pub why: String,
}

/// Splits `[registry/]term` as docker does: a first component with a `.`
/// or `:`, or `localhost`, is a registry; else the term is Docker Hub's.
pub fn split_term(term: &str) -> (Option<&str>, &str) {
    match term.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, term),
    }
}

/// The repositories of a catalog that contain `term`, at most `limit`.
pub fn filter_catalog(
    registry: &str,
    catalog: &serde_json::Value,
    term: &str,
    limit: usize,
) -> Vec<Found> {
    catalog["repositories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
        .filter(|r| r.contains(term))
        .take(limit)
        .map(|r| Found {
            name: format!("{registry}/{r}"),
            description: String::new(),
            stars: 0,
            official: false,
        })
        .collect()
}

/// Searches `registry` (`None`: Docker Hub) for `term`; `auth` is Basic
/// credentials for it, if any; plain HTTP when `plain_http`.
pub async fn search(
    registry: Option<&str>,
    term: &str,
    limit: usize,
    auth: Option<(String, String)>,
    plain_http: bool,
) -> Result<Vec<Found>, SearchError> {
    let shown = registry.unwrap_or("docker.io").to_string();
    let fail = |why: String| SearchError {
        registry: shown.clone(),
        why,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let host = registry.unwrap_or("index.docker.io");
    let scheme = if plain_http { "http" } else { "https" };
    // The search API first (Docker Hub has it; a plain registry answers 404).
    let url = format!("{scheme}://{host}/v1/search");
    let get = |url: String, query: Vec<(&'static str, String)>| {
        let mut req = client.get(&url).query(&query);
        if let Some((u, p)) = &auth {
            req = req.basic_auth(u, Some(p));
        }
        let fail = &fail;
        async move {
            req.send()
                .await
                .map_err(|e| fail(format!("GET {url}: {e}")))
        }
    };
    let resp = get(
        url.clone(),
        vec![("q", term.to_string()), ("n", limit.to_string())],
    )
    .await?;
    if resp.status().is_success() {
        let v: serde_json::Value = resp.json().await.map_err(|e| fail(format!("{url}: {e}")))?;
        return Ok(v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .take(limit)
            .map(|r| Found {
                name: match registry {
                    Some(reg) => format!("{reg}/{}", r["name"].as_str().unwrap_or("")),
                    None => r["name"].as_str().unwrap_or("").to_string(),
                },
                description: r["description"].as_str().unwrap_or("").to_string(),
                stars: u32::try_from(r["star_count"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX),
                official: r["is_official"].as_bool().unwrap_or(false),
            })
            .collect());
    }
    let Some(registry) = registry else {
        return Err(fail(format!("GET {url}: {}", resp.status())));
    };
    let url = format!("{scheme}://{host}/v2/_catalog");
    // distribution caps a catalog page at 1000 entries.
    let resp = get(url.clone(), vec![("n", "1000".to_string())]).await?;
    if !resp.status().is_success() {
        return Err(fail(format!(
            "the registry offers neither a search API nor a catalog ({})",
            resp.status()
        )));
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| fail(format!("{url}: {e}")))?;
    Ok(filter_catalog(registry, &v, term, limit))
}

/// The tags of `repository` on `registry` (the distribution API's
/// `/v2/<name>/tags/list`), sorted.
pub async fn tags(
    registry: &str,
    repository: &str,
    auth: Option<(String, String)>,
    plain_http: bool,
) -> Result<Vec<String>, SearchError> {
    let fail = |why: String| SearchError {
        registry: registry.to_string(),
        why,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let scheme = if plain_http { "http" } else { "https" };
    let url = format!("{scheme}://{registry}/v2/{repository}/tags/list");
    let mut req = client.get(&url);
    if let Some((u, p)) = &auth {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| fail(format!("GET {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(fail(format!("GET {url}: {}", resp.status())));
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| fail(format!("{url}: {e}")))?;
    let mut out: Vec<String> = v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry_as_docker_reads_them() {
        assert_eq!(split_term("busybox"), (None, "busybox"));
        assert_eq!(split_term("library/busybox"), (None, "library/busybox"));
        assert_eq!(
            split_term("127.0.0.1:5000/busy"),
            (Some("127.0.0.1:5000"), "busy")
        );
        assert_eq!(split_term("localhost/x"), (Some("localhost"), "x"));
    }

    #[test]
    fn a_catalog_is_filtered_and_limited() {
        let c = serde_json::json!({"repositories": ["a/busybox", "busybox", "nginx", "my/busy"]});
        let f = filter_catalog("r:5000", &c, "busy", 2);
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["r:5000/a/busybox", "r:5000/busybox"]);
    }
}
