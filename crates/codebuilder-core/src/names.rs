//! Validated names. An `AppName` becomes a directory, an image name, a helm release and a
//! namespace; a `KeyName` is printed inside sshd's `command="..."`. Both are checked once,
//! here, so nothing downstream has to quote or escape them.

use std::fmt;

/// Kubernetes namespaces a push must never touch, besides codebuilder's own.
const RESERVED_APPS: &[&str] = &["default"];
const RESERVED_PREFIX: &str = "kube-";
/// Longest app name: helm release names are limited to 53 characters.
pub const MAX_APP_LEN: usize = 53;
pub const MAX_KEY_NAME_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("app name is empty")]
    EmptyApp,
    #[error("app name {0:?} is longer than {MAX_APP_LEN} characters")]
    AppTooLong(String),
    #[error(
        "app name {0:?} is not valid: use lowercase letters, digits and '-', starting and ending with a letter or digit"
    )]
    AppInvalid(String),
    #[error("app name {0:?} is reserved: it names a namespace codebuilder must not touch")]
    AppReserved(String),
    #[error("key name is empty")]
    EmptyKey,
    #[error(
        "key name {0:?} is not valid: use at most {MAX_KEY_NAME_LEN} lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    KeyInvalid(String),
    #[error("{0:?} is not a SHA256 fingerprint as 'ssh-keygen -lf' prints it")]
    FingerprintInvalid(String),
    #[error("{0:?} is not a full commit id: use the 40 hexadecimal digits 'git rev-parse' prints")]
    ObjectIdInvalid(String),
    #[error(
        "{0:?} is not a branch name: use letters, digits, '-', '_', '.' and '/', with no '..' or '//', no part starting with '.' or ending with '.lock', and no '-' or '/' at either end"
    )]
    BranchInvalid(String),
}

/// An app name: a DNS-1123 label of at most 53 characters that is not a reserved namespace.
/// Read back from a request codebuilder wrote itself (serde), it is checked again, against
/// every reserved name but codebuilder's own namespace, which the writer checked.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);

impl AppName {
    /// Checks `name` against the DNS-1123 label rule and the reserved namespaces, where
    /// `own_namespace` is the namespace codebuilder itself runs in.
    pub fn parse(name: &str, own_namespace: &str) -> Result<Self, NameError> {
        let shown = || printable(name);
        if name.is_empty() {
            return Err(NameError::EmptyApp);
        }
        if name.len() > MAX_APP_LEN {
            return Err(NameError::AppTooLong(shown()));
        }
        let bytes = name.as_bytes();
        let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let inner_ok = |b: u8| edge_ok(b) || b == b'-';
        if !edge_ok(bytes[0])
            || !edge_ok(bytes[bytes.len() - 1])
            || !bytes.iter().all(|&b| inner_ok(b))
        {
            return Err(NameError::AppInvalid(shown()));
        }
        if RESERVED_APPS.contains(&name)
            || name.starts_with(RESERVED_PREFIX)
            || name == "codebuilder"
            || name == own_namespace
        {
            return Err(NameError::AppReserved(shown()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AppName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value, "codebuilder")
    }
}

impl From<AppName> for String {
    fn from(value: AppName) -> Self {
        value.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a stored SSH key: `[a-z0-9][a-z0-9._-]{0,63}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::EmptyKey);
        }
        let bytes = name.as_bytes();
        let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
        let rest_ok = bytes.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
        if !first_ok || !rest_ok || name.len() > MAX_KEY_NAME_LEN {
            return Err(NameError::KeyInvalid(printable(name)));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<KeyName> for String {
    fn from(value: KeyName) -> Self {
        value.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's identity: `SHA256:` and 43 characters of unpadded base64, as `ssh-keygen -lf`
/// prints it. It stands in sshd's forced command, so its character set is checked here.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let ok = text.strip_prefix("SHA256:").is_some_and(|encoded| {
            encoded.len() == 43
                && encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        });
        if !ok {
            return Err(NameError::FingerprintInvalid(printable(text)));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Fingerprint> for String {
    fn from(value: Fingerprint) -> Self {
        value.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full git object id: 40 hexadecimal digits (SHA-1), or 64 (SHA-256), lowercase as git
/// prints them.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectId(String);

impl ObjectId {
    /// Length of the short form, as git and image tags print it.
    pub const SHORT_LEN: usize = 7;

    /// Reads an id as git prints it (`rev-parse`, a hook's stdin): upper case is refused.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let ok = matches!(text.len(), 40 | 64)
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(NameError::ObjectIdInvalid(printable(text)));
        }
        Ok(Self(text.to_owned()))
    }

    /// Reads an id a person typed (a `.buildpacks` `#REF`), where git also takes upper case:
    /// it is lowercased, as git would print it.
    pub fn parse_typed(text: &str) -> Result<Self, NameError> {
        Self::parse(&text.to_ascii_lowercase())
            .map_err(|_| NameError::ObjectIdInvalid(printable(text)))
    }

    /// The all-zero id: what git's hooks read for a ref that does not exist.
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }

    /// The first seven digits, as git and image tags print a commit.
    pub fn short(&self) -> &str {
        &self.0[..Self::SHORT_LEN]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ObjectId {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for ObjectId {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ObjectId> for String {
    fn from(value: ObjectId) -> Self {
        value.0
    }
}

impl AsRef<str> for ObjectId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A branch name, by git's `check-ref-format --branch` rules over a plain character set:
/// ASCII letters, digits, `-`, `_`, `.` and `/`, at most 255 bytes; no `..` or `//`; no part
/// between slashes that starts with `.` or ends with `.lock`; no `-`, `.` or `/` first and no
/// `/` or `.` last. A tag and a full commit id pass the same rule, so a buildpack's `#REF`
/// is checked by it too. Nothing it admits can reach git as an option.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BranchName(String);

impl BranchName {
    pub const MAX_LEN: usize = 255;

    pub fn parse(name: &str) -> Result<Self, NameError> {
        let ok = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
            && !name.starts_with(['-', '/', '.'])
            && !name.ends_with(['/', '.'])
            && !name.contains("..")
            && !name.contains("//")
            && name
                .split('/')
                .all(|part| !part.starts_with('.') && !part.ends_with(".lock"));
        if !ok {
            return Err(NameError::BranchInvalid(printable(name)));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `main`: git's and GitHub's first branch, and codebuilder's deploy branch unless set.
impl Default for BranchName {
    fn default() -> Self {
        Self("main".to_owned())
    }
}

impl std::str::FromStr for BranchName {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for BranchName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<BranchName> for String {
    fn from(value: BranchName) -> Self {
        value.0
    }
}

impl AsRef<str> for BranchName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BranchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who made a build or a release: the data behind a record's `pusher` and a release's `by`.
///
/// Its stored form is its display string (`alice`, `admin`, `unknown`, `rebuild by alice`),
/// through `serde(into = "String", try_from = "String")`: that string is what `builds --json`
/// prints as `pusher` and what build records and config files already on disk hold, so old
/// records load unchanged and scripts reading the JSON see no change. The cost is that a key
/// named `admin` or `unknown` reads back as [`Actor::Admin`] or [`Actor::Unknown`]: the text
/// never told them apart, and nothing decides by it (a build record's `pusher_fingerprint`
/// names the key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    /// A key over ssh: codebuilder-receive names it to the hook and the commands.
    Key(KeyName),
    /// An admin at `kubectl exec`, with no key.
    Admin,
    /// A push the hook was not told the key of: it did not come through codebuilder-receive.
    Unknown,
    /// `rebuild APP`: a build without a push, run by a key over ssh, or by an admin at
    /// `kubectl exec` (`None`). A rebuild moves no ref, which the next push's wait relies on.
    Rebuild { by: Option<KeyName> },
}

impl Actor {
    const ADMIN: &'static str = "admin";
    const UNKNOWN: &'static str = "unknown";
    const REBUILD_BY: &'static str = "rebuild by ";
    /// Between what was done and who did it, in the text of a release's cause.
    const BY: &'static str = " by ";

    /// Reads the display form back.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let key = |name: &str| match name {
            Self::ADMIN => Ok(None),
            name => KeyName::parse(name).map(Some),
        };
        let actor = match text {
            Self::ADMIN => Self::Admin,
            Self::UNKNOWN => Self::Unknown,
            text => match text.strip_prefix(Self::REBUILD_BY) {
                Some(by) => Self::Rebuild { by: key(by)? },
                None => Self::Key(KeyName::parse(text)?),
            },
        };
        Ok(actor)
    }

    /// The key named by `name` (codebuilder-receive's `CODEBUILDER_PUSHER`), or `otherwise`
    /// when none is.
    pub fn key_or(name: Option<&str>, otherwise: Self) -> Result<Self, NameError> {
        name.map_or(Ok(otherwise), |name| KeyName::parse(name).map(Self::Key))
    }

    /// `WHAT by ACTOR`: the text of a release's cause, as helm's release description keeps it.
    pub fn attribute(&self, what: &str) -> String {
        format!("{what}{}{self}", Self::BY)
    }

    /// Takes `WHAT by ACTOR` apart, as [`Actor::attribute`] wrote it; `None` for text that does
    /// not end in an actor (helm's own descriptions). What is done never holds " by " (a
    /// build's number and commit, config var names, a release number), so the first one
    /// splits.
    pub fn attributed(text: &str) -> Option<(&str, Self)> {
        let (what, by) = text.split_once(Self::BY)?;
        Some((what, Self::parse(by).ok()?))
    }

    /// Whether this is a rebuild, which moves no ref.
    pub fn is_rebuild(&self) -> bool {
        matches!(self, Self::Rebuild { .. })
    }
}

impl TryFrom<String> for Actor {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Actor> for String {
    fn from(value: Actor) -> Self {
        value.to_string()
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(key) => write!(f, "{key}"),
            Self::Admin => f.write_str(Self::ADMIN),
            Self::Unknown => f.write_str(Self::UNKNOWN),
            Self::Rebuild { by: Some(key) } => write!(f, "{}{key}", Self::REBUILD_BY),
            Self::Rebuild { by: None } => write!(f, "{}{}", Self::REBUILD_BY, Self::ADMIN),
        }
    }
}

/// Shortens and escapes untrusted text so that an error message stays one readable line.
pub fn printable(text: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_dns_labels() {
        for name in ["myapp", "a", "my-app-2", "0app", &"a".repeat(53)] {
            assert_eq!(AppName::parse(name, "codebuilder").unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_bad_app_names() {
        let cases = [
            "",
            "-app",
            "app-",
            "App",
            "my_app",
            "my.app",
            "../etc",
            "a/b",
            "a b",
            "a\nb",
            "a'b",
            "a\"b",
            "ünicode",
            "a\u{0}",
            "default",
            "kube-system",
            "kube-anything",
            "codebuilder",
            "mine",
        ];
        for name in cases {
            assert!(
                AppName::parse(name, "mine").is_err(),
                "{name:?} was accepted"
            );
        }
        assert!(matches!(
            AppName::parse(&"a".repeat(54), "x"),
            Err(NameError::AppTooLong(_))
        ));
    }

    #[test]
    fn refuses_bad_key_names() {
        for name in [
            "",
            "-x",
            ".x",
            "_x",
            "X",
            "a b",
            "a\"b",
            "a\\b",
            "a,b",
            "a=b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(KeyName::parse(name).is_err(), "{name:?} was accepted");
        }
        assert!(KeyName::parse(&"a".repeat(64)).is_ok());
        assert!(KeyName::parse("alice.laptop_2-x").is_ok());
    }

    #[test]
    fn fingerprints() {
        let good = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        assert_eq!(Fingerprint::parse(good).unwrap().as_str(), good);
        for bad in [
            "",
            "SHA256:",
            "uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2",
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s=",
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3t\"\"s",
            "MD5:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn object_ids() {
        let sha1 = "0123456789abcdef0123456789abcdef01234567";
        let id = ObjectId::parse(sha1).unwrap();
        assert_eq!(id.as_str(), sha1);
        assert_eq!(id.short(), "0123456");
        assert!(!id.is_zero());
        assert!(ObjectId::parse(&"0".repeat(40)).unwrap().is_zero());
        assert!(ObjectId::parse(&"f".repeat(64)).is_ok());
        for bad in [
            "",
            "0123456",
            "main",
            &"a".repeat(39),
            &"a".repeat(41),
            &"A".repeat(40),
            &"g".repeat(40),
            &format!("-{}", "a".repeat(39)),
        ] {
            assert!(ObjectId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ObjectId::parse("main").unwrap_err().to_string(),
            "\"main\" is not a full commit id: use the 40 hexadecimal digits 'git rev-parse' prints"
        );
    }

    #[test]
    fn typed_object_ids_are_lowercased() {
        let typed = "0123456789ABCDEF0123456789ABCDEF01234567";
        assert_eq!(
            ObjectId::parse_typed(typed).unwrap().as_str(),
            typed.to_ascii_lowercase()
        );
        assert_eq!(
            ObjectId::parse_typed("V1").unwrap_err(),
            NameError::ObjectIdInvalid("V1".into())
        );
    }

    #[test]
    fn branch_names() {
        for good in [
            "main",
            "master",
            "release/1.2",
            "feature_x-2",
            "v1.0",
            &"a".repeat(40),
        ] {
            assert_eq!(BranchName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "-x",
            ".x",
            "/x",
            "x/",
            "x.",
            "a..b",
            "a//b",
            "x.lock",
            "a.lock/b",
            "a/.b",
            "a b",
            "a:b",
            "a@b",
            "a=b",
            "a+b",
            "a~1",
            "a^",
            "a\nb",
            &"a".repeat(256),
        ] {
            assert!(BranchName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            BranchName::parse("a..b").unwrap_err().to_string(),
            "\"a..b\" is not a branch name: use letters, digits, '-', '_', '.' and '/', with no '..' or '//', no part starting with '.' or ending with '.lock', and no '-' or '/' at either end"
        );
    }

    #[test]
    fn actors_read_back_as_written() {
        let alice = KeyName::parse("alice").unwrap();
        for (actor, text) in [
            (Actor::Key(alice.clone()), "alice"),
            (Actor::Admin, "admin"),
            (Actor::Unknown, "unknown"),
            (Actor::Rebuild { by: Some(alice) }, "rebuild by alice"),
            (Actor::Rebuild { by: None }, "rebuild by admin"),
        ] {
            assert_eq!(actor.to_string(), text);
            assert_eq!(Actor::parse(text).unwrap(), actor);
            let json = serde_json::to_string(&actor).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), actor);
        }
        for bad in ["", "Alice", "a b", "rebuild by ", "rebuild by rebuild by x"] {
            assert!(Actor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn actors_from_the_environment() {
        assert_eq!(Actor::key_or(None, Actor::Admin).unwrap(), Actor::Admin);
        assert_eq!(
            Actor::key_or(Some("dev"), Actor::Unknown).unwrap(),
            Actor::Key(KeyName::parse("dev").unwrap())
        );
        assert!(Actor::key_or(Some("a b"), Actor::Admin).is_err());
    }

    #[test]
    fn attributed_text_reads_back() {
        let rebuild = Actor::Rebuild { by: None };
        assert_eq!(
            rebuild.attribute("build 3 of abc1234"),
            "build 3 of abc1234 by rebuild by admin"
        );
        assert_eq!(
            Actor::attributed("build 3 of abc1234 by rebuild by admin"),
            Some(("build 3 of abc1234", rebuild))
        );
        assert_eq!(
            Actor::attributed("config set A, B; unset C by alice"),
            Some((
                "config set A, B; unset C",
                Actor::Key(KeyName::parse("alice").unwrap())
            ))
        );
        assert_eq!(Actor::attributed("Upgrade complete"), None);
        assert_eq!(Actor::attributed("failed: denied by the webhook x"), None);
    }

    #[test]
    fn printable_is_one_line() {
        assert_eq!(printable("a\nb\"c"), "a\\nb\\\"c");
        assert!(printable(&"x".repeat(500)).ends_with("..."));
    }

    proptest! {
        #[test]
        fn accepted_app_names_are_safe_everywhere(name in "\\PC{0,60}") {
            if let Ok(app) = AppName::parse(&name, "codebuilder") {
                let s = app.as_str();
                prop_assert!(s.len() <= MAX_APP_LEN);
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(!s.starts_with('-') && !s.ends_with('-'));
            }
        }

        #[test]
        fn accepted_key_names_cannot_break_quotes(name in "[ -~\\n\\t]{0,70}") {
            if let Ok(key) = KeyName::parse(&name) {
                prop_assert!(!key.as_str().contains(['"', '\\', ' ', ',', '\n']));
            }
        }
    }
}
