//! Buildpacks as the operator or an app names them: `URL[#REF]` or `/PATH[#REF]`, checked before
//! anything of them reaches `git clone` or `docker`.

use crate::BranchName;

/// Who named a buildpack, which decides what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The operator (`CODEBUILDER_BUILDPACKS`): local directories are allowed.
    Operator,
    /// An app (its `.buildpacks` file, its `BUILDPACK_URL`): network git URLs only. A local
    /// path or `file://` URL would copy files of the codebuilder host (keys, other apps'
    /// repositories) into the app's build, where its owner can read them.
    App,
}

/// Where a buildpack comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildpackSource {
    /// A git repository, cloned on the codebuilder host (nothing of it runs there).
    Git(String),
    /// A directory on the codebuilder host, used as it is (operator only).
    Local(std::path::PathBuf),
}

/// One buildpack as written by the operator or an app: `URL[#REF]` or `/PATH[#REF]`. Checked
/// before it reaches `git clone` or `docker`: no option-like, quoted, spaced or control
/// characters, only network git schemes, and a ref that is a plain git name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buildpack {
    source: BuildpackSource,
    reference: Option<String>,
    text: String,
}

/// Why a buildpack URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildpackUrlError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_BUILDPACK_URL} characters")]
    TooLong,
    #[error("contains a space, quote, control or other character that has no place in a URL")]
    BadCharacter,
    #[error("is not a git URL: use https://, http://, git:// or ssh://")]
    UnsupportedScheme,
    #[error("has no host")]
    NoHost,
    #[error("has a percent-encoded host or user, or one that starts with '-'")]
    BadHost,
    #[error("is a local path, which only the operator's CODEBUILDER_BUILDPACKS may name")]
    LocalNotAllowed,
    #[error("is a tarball: only git URLs of buildpacks are supported")]
    Tarball,
    #[error("has a #REF that is not a branch, tag or commit name")]
    BadReference,
}

/// Longest buildpack URL accepted, `#REF` included.
pub const MAX_BUILDPACK_URL: usize = 1024;

impl Buildpack {
    pub fn parse(text: &str, origin: Origin) -> Result<Self, BuildpackUrlError> {
        if text.is_empty() {
            return Err(BuildpackUrlError::Empty);
        }
        if text.len() > MAX_BUILDPACK_URL {
            return Err(BuildpackUrlError::TooLong);
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@+=~%#".contains(&b))
        {
            return Err(BuildpackUrlError::BadCharacter);
        }
        let (location, reference) = match text.split_once('#') {
            Some((location, reference)) if BranchName::parse(reference).is_ok() => {
                (location, Some(reference.to_owned()))
            }
            Some(_) => return Err(BuildpackUrlError::BadReference),
            None => (text, None),
        };
        let source = if location.starts_with('/') {
            if origin == Origin::App {
                return Err(BuildpackUrlError::LocalNotAllowed);
            }
            BuildpackSource::Local(location.into())
        } else {
            check_git_url(location)?;
            BuildpackSource::Git(location.to_owned())
        };
        Ok(Self {
            source,
            reference,
            text: text.to_owned(),
        })
    }

    /// Parses a comma-separated list (the operator's setting); empty entries are skipped.
    pub fn parse_list(text: &str, origin: Origin) -> Result<Vec<Self>, BuildpackUrlError> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| Self::parse(entry, origin))
            .collect()
    }

    pub fn source(&self) -> &BuildpackSource {
        &self.source
    }

    /// The `#REF` to check out, if one was pinned.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// As it was written, `#REF` included: how messages name it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Buildpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn check_git_url(url: &str) -> Result<(), BuildpackUrlError> {
    let rest = ["https://", "http://", "git://", "ssh://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or(BuildpackUrlError::UnsupportedScheme)?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(BuildpackUrlError::NoHost);
    }
    // A user or host that starts with `-` would reach ssh as an option, and git decodes
    // `%2D` into `-` before it calls ssh: no percent-encoding in the authority at all.
    if authority.starts_with('-') || host.starts_with('-') || authority.contains('%') {
        return Err(BuildpackUrlError::BadHost);
    }
    if [".tgz", ".tar.gz", ".tar", ".zip"]
        .iter()
        .any(|suffix| url.ends_with(suffix))
    {
        return Err(BuildpackUrlError::Tarball);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildpack_urls() {
        use BuildpackUrlError::*;
        let app = |text: &str| Buildpack::parse(text, Origin::App).map(|_| ());
        assert_eq!(
            app("https://github.com/heroku/heroku-buildpack-ruby.git"),
            Ok(())
        );
        assert_eq!(app("git://127.0.0.1:9418/bp.git#0123abc"), Ok(()));
        assert_eq!(app("ssh://git@example.com/bp#release/v2"), Ok(()));
        for (text, error) in [
            ("", Empty),
            ("/opt/buildpacks/go", LocalNotAllowed),
            (
                "file:///var/lib/codebuilder/repos/other.git",
                UnsupportedScheme,
            ),
            ("ext::sh -c touch% /tmp/pwned", BadCharacter),
            ("--upload-pack=touch /tmp/x", BadCharacter),
            ("-uhttps://x", UnsupportedScheme),
            ("ssh://-oProxyCommand=x/bp", BadHost),
            ("ssh://%2DoProxyCommand=x/bp", BadHost),
            ("ssh://%2doProxyCommand=x/bp", BadHost),
            ("https://git%40x@%2Dx/bp", BadHost),
            ("ssh://-oProxyCommand=x@example.com/bp", BadHost),
            ("git://exa%6Dple.com/bp", BadHost),
            ("https:///bp", NoHost),
            ("https://x/bp.git#--orphan", BadReference),
            ("https://x/bp.git#a..b", BadReference),
            ("https://x/bp.git#", BadReference),
            ("https://x/bp.git#a#b", BadReference),
            ("https://x/bp.git\n", BadCharacter),
            ("https://x/bp.git\u{0}", BadCharacter),
            ("https://x/b p.git", BadCharacter),
            ("https://x/\"bp", BadCharacter),
            ("https://x/bp.tgz", Tarball),
        ] {
            assert_eq!(app(text), Err(error), "{text}");
        }
        assert_eq!(
            app(&format!("https://x/{}", "a".repeat(1100))),
            Err(TooLong)
        );
        assert!(Buildpack::parse("/opt/bp#main", Origin::Operator).is_ok());
    }
}
