//! sshd's quoting rule: what a path must be to stand inside sshd's configuration and its
//! `command="..."`, where sshd hands it to a shell. The sshd_config writer, the forced command
//! line and the pre-receive hook's script all print paths there, so the rule is one function
//! here rather than in any of them.

use std::path::Path;

use anyhow::bail;

/// A path that can stand inside `command="..."` and be split by sshd's shell as one word.
pub fn quotable_path(path: &Path) -> anyhow::Result<&str> {
    let text = path.to_str().filter(|t| t.starts_with('/')).unwrap_or("");
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        bail!(
            "path {:?} cannot be used in sshd's forced command: use an absolute path of letters, digits and /._-+",
            path.display()
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_plain_paths_only() {
        assert_eq!(
            quotable_path(Path::new("/var/lib/codebuilder")).unwrap(),
            "/var/lib/codebuilder"
        );
        for path in [
            "", "relative", "/a b", "/a\"b", "/a\nb", "/a;b", "/a$b", "/a\\b",
        ] {
            assert!(quotable_path(Path::new(path)).is_err(), "{path:?}");
        }
        assert_eq!(
            quotable_path(Path::new("/a b")).unwrap_err().to_string(),
            "path \"/a b\" cannot be used in sshd's forced command: use an absolute path of letters, digits and /._-+"
        );
    }
}
