//! The little of the registry's HTTP API that codebuilder needs itself, beside `docker push`:
//! the digest a tag names and the deletion of a manifest by digest (image retention). Plain
//! HTTP/1.0, as the registry codebuilder pushes to is on loopback (the pod's, or the local
//! start's).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// Time for one request to the registry.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read: these are headers and small JSON documents.
const MAX_ANSWER: u64 = 1 << 20;
/// Every manifest type `docker push` makes: asked for all, the registry answers with the
/// digest of what it stores instead of converting it.
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

pub struct RegistryApi<'a> {
    /// `HOST:PORT`, as CODEBUILDER_REGISTRY names it.
    pub address: &'a str,
    /// The `auth` of the registry in the push credentials (base64 of `USER:PASSWORD`).
    pub auth: Option<String>,
}

impl<'a> RegistryApi<'a> {
    /// The API of `address` with the credentials of `config_dir` (CODEBUILDER_REGISTRY_AUTH),
    /// if any.
    pub fn new(address: &'a str, config_dir: Option<&Path>) -> anyhow::Result<Self> {
        let auth = match config_dir {
            Some(dir) => Some(credentials(&dir.join("config.json"), address)?),
            None => None,
        };
        Ok(Self { address, auth })
    }
}

/// The `auths.ADDRESS.auth` of a docker `config.json`.
fn credentials(path: &Path, address: &str) -> anyhow::Result<String> {
    let text = std::fs::read(path).with_context(|| {
        format!(
            "cannot read the registry credentials {} (CODEBUILDER_REGISTRY_AUTH)",
            path.display()
        )
    })?;
    let config: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a docker config.json", path.display()))?;
    config["auths"][address]["auth"]
        .as_str()
        .filter(|auth| {
            auth.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        })
        .map(String::from)
        .ok_or_else(|| {
            anyhow!(
                "{} has no auths.\"{address}\".auth: add the registry's credentials (docker login {address})",
                path.display()
            )
        })
}

/// An HTTP answer: its status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RegistryApi<'_> {
    fn request(&self, method: &str, path: &str) -> anyhow::Result<Answer> {
        let fail = || {
            format!(
                "cannot reach the registry {} ({method} {path})",
                self.address
            )
        };
        let mut stream = TcpStream::connect(self.address).with_context(fail)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let authorization = self
            .auth
            .as_ref()
            .map(|auth| format!("Authorization: Basic {auth}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nAccept: {MANIFEST_TYPES}\r\n{authorization}\r\n",
            self.address
        )
        .with_context(fail)?;
        let mut answer = Vec::new();
        stream
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .with_context(fail)?;
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| anyhow!("{}: not an HTTP answer", fail()))?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Ok(Answer {
            status,
            headers,
            body: body.to_owned(),
        })
    }

    /// The digest of the manifest `repository:tag` names, or `None` if there is no such tag.
    pub fn digest(&self, repository: &str, tag: &str) -> anyhow::Result<Option<String>> {
        let answer = self.request("HEAD", &format!("/v2/{repository}/manifests/{tag}"))?;
        match answer.status {
            200 => answer
                .header("docker-content-digest")
                .filter(|d| is_digest(d))
                .map(|d| Some(d.to_owned()))
                .ok_or_else(|| {
                    anyhow!(
                        "the registry {} gave no digest for {repository}:{tag}",
                        self.address
                    )
                }),
            404 => Ok(None),
            401 => bail!(
                "the registry {} refused codebuilder's credentials: check CODEBUILDER_REGISTRY_AUTH",
                self.address
            ),
            status => bail!(
                "the registry {} answered {status} for {repository}:{tag}",
                self.address
            ),
        }
    }

    /// Every tag of `repository`; none when the registry has no such repository.
    pub fn tags(&self, repository: &str) -> anyhow::Result<Vec<String>> {
        let answer = self.request("GET", &format!("/v2/{repository}/tags/list"))?;
        match answer.status {
            200 => {
                let list: serde_json::Value = serde_json::from_str(&answer.body).with_context(
                    || format!("the registry {} listed the tags of {repository} in no JSON", self.address),
                )?;
                Ok(list["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|tag| tag.as_str())
                    .filter(|tag| is_tag(tag))
                    .map(String::from)
                    .collect())
            }
            404 => Ok(Vec::new()),
            401 => bail!(
                "the registry {} refused codebuilder's credentials: check CODEBUILDER_REGISTRY_AUTH",
                self.address
            ),
            status => bail!(
                "the registry {} answered {status} for the tags of {repository}",
                self.address
            ),
        }
    }

    /// Deletes the manifest `digest` of `repository`, and with it every tag that names it.
    pub fn delete(&self, repository: &str, digest: &str) -> anyhow::Result<()> {
        if !is_digest(digest) {
            bail!("{digest:?} is not a manifest digest");
        }
        let answer = self.request("DELETE", &format!("/v2/{repository}/manifests/{digest}"))?;
        match answer.status {
            200..=299 | 404 => Ok(()),
            405 => bail!(
                "the registry {} does not allow deletes: set storage.delete.enabled: true in its configuration (REGISTRY_STORAGE_DELETE_ENABLED=true)",
                self.address
            ),
            status => bail!(
                "the registry {} answered {status} to the deletion of {repository}@{digest}",
                self.address
            ),
        }
    }
}

/// `sha256:` and 64 lower-case hex digits: safe in a URL path.
fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A tag as the registry may name one (the distribution spec's rule): safe in a URL path.
fn is_tag(text: &str) -> bool {
    (1..=128).contains(&text.len())
        && !text.starts_with(['.', '-'])
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert!(is_digest(&format!("sha256:{}", "a0".repeat(32))));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("sha256:{}/../x", "a0".repeat(30))));
        assert!(!is_digest(&format!("sha512:{}", "a0".repeat(32))));
        assert!(is_tag("git-abc1234"));
        assert!(is_tag("latest"));
        assert!(!is_tag("../x"));
        assert!(!is_tag("-x"));
    }
}
