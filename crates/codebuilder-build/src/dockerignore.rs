//! `.dockerignore`, read and matched by docker's own rules (moby's `ignorefile` reader and
//! `patternmatcher`, which `docker build .` applies to its context): one pattern per line,
//! `#` starts a comment line, surrounding spaces go, each pattern is cleaned as a path
//! (`./a`, `a//b`, `a/../b`) and loses a leading `/`; `*` and `?` match within one path
//! element, `**` any number of elements, `[...]` a class, `\` escapes; a pattern that matches
//! a directory matches everything under it; `!PATTERN` re-includes what earlier lines
//! excluded, and the last matching line decides.

use regex::Regex;

/// The lists of files a build leaves out: `.dockerignore` for a Dockerfile build, Heroku's
/// `.slugignore` for a buildpack build (its files are removed before the buildpacks run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreFile {
    Docker,
    Slug,
}

impl IgnoreFile {
    /// The file's name at the root of the tree.
    pub fn name(self) -> &'static str {
        match self {
            Self::Docker => ".dockerignore",
            Self::Slug => ".slugignore",
        }
    }

    fn rules(self) -> &'static str {
        match self {
            Self::Docker => "docker's pattern rules",
            Self::Slug => ".gitignore's rules, without ! lines, as on Heroku",
        }
    }
}

/// What a line that the file's rules refuse says.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} line {line} ({pattern:?}) is not a valid pattern: fix it ({}), commit, and push again", .file.name(), .file.rules())]
pub struct PatternError {
    pub file: IgnoreFile,
    pub line: usize,
    pub pattern: String,
}

/// The patterns of one `.dockerignore`, in order.
#[derive(Debug)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    /// A `!` line: re-includes what it matches.
    exception: bool,
    rule: Rule,
}

/// How a cleaned pattern matches, the cheapest way its characters allow.
#[derive(Debug)]
enum Rule {
    /// No wildcard: the path itself.
    Exact(String),
    /// `DIR/**`: everything that starts with `DIR/`.
    Prefix(String),
    /// `**/NAME`, NAME without wildcards: paths that end with `/NAME`, or are NAME.
    Suffix(String),
    Regex(Regex),
}

impl Patterns {
    /// Reads a `.dockerignore`'s text.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        Self::parse_as(text, IgnoreFile::Docker)
    }

    /// Reads a `.slugignore`'s text: the patterns, and the same list in `.dockerignore`'s
    /// terms (for `context-filter`).
    pub fn parse_slugignore(text: &str) -> Result<(Self, String), PatternError> {
        let docker = slug_to_docker(text)?;
        let patterns = Self::parse_as(&docker, IgnoreFile::Slug).map_err(|e| PatternError {
            pattern: text.lines().nth(e.line - 1).unwrap_or_default().to_owned(),
            ..e
        })?;
        Ok((patterns, docker))
    }

    fn parse_as(text: &str, file: IgnoreFile) -> Result<Self, PatternError> {
        let mut patterns = Vec::new();
        for (number, line) in numbered_lines(text) {
            if line.starts_with('#') {
                continue;
            }
            let bad = || PatternError {
                file,
                line: number,
                pattern: line.to_owned(),
            };
            let pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let (exception, pattern) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, pattern),
            };
            if pattern.is_empty() {
                return Err(bad());
            }
            let cleaned = clean(pattern);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(relative) if !relative.is_empty() => relative.to_owned(),
                _ => cleaned,
            };
            let rule = Rule::compile(&cleaned).ok_or_else(bad)?;
            patterns.push(Pattern { exception, rule });
        }
        Ok(Self { patterns })
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated, clean) is left out of the
    /// context: the last pattern that matches it or one of its parent directories decides.
    pub fn excludes(&self, path: &str) -> bool {
        // The parent directories, shortest first: `a`, `a/b` for `a/b/c`.
        let parents: Vec<&str> = path.match_indices('/').map(|(at, _)| &path[..at]).collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // Only a pattern that could change the answer is tried.
            if pattern.exception != excluded {
                continue;
            }
            let matched =
                pattern.rule.matches(path) || parents.iter().any(|dir| pattern.rule.matches(dir));
            if matched {
                excluded = !pattern.exception;
            }
        }
        excluded
    }
}

/// The lines of a list, numbered from 1, without a leading byte order mark.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
}

/// A `.slugignore` in `.dockerignore`'s terms, line for line. As in `.gitignore`: a pattern
/// without a `/` matches at any depth (`**/`), one with a `/` is relative to the root, and a
/// trailing `/` goes (docker's patterns cannot say "directories only"). Heroku has no `!`
/// lines.
fn slug_to_docker(text: &str) -> Result<String, PatternError> {
    let mut lines = Vec::new();
    for (number, line) in numbered_lines(text) {
        let pattern = line.trim();
        if pattern.is_empty() || pattern.starts_with('#') {
            lines.push(String::new());
            continue;
        }
        let pattern = pattern.trim_end_matches('/');
        if pattern.is_empty() || pattern.starts_with('!') {
            return Err(PatternError {
                file: IgnoreFile::Slug,
                line: number,
                pattern: line.to_owned(),
            });
        }
        lines.push(if pattern.contains('/') {
            pattern.to_owned()
        } else {
            format!("**/{pattern}")
        });
    }
    Ok(lines.join("\n"))
}

impl Rule {
    /// Turns a cleaned pattern into a rule; `None` for a pattern docker refuses.
    fn compile(pattern: &str) -> Option<Self> {
        #[derive(PartialEq)]
        enum Kind {
            Exact,
            Prefix,
            Suffix,
            Regex,
        }
        let mut kind = Kind::Exact;
        let mut regex = String::from("^");
        let mut chars = pattern.chars().peekable();
        let mut first = true;
        // An unclosed `[` is refused, as docker's syntax check does.
        let mut open_class = false;
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    // `**/` is `**`.
                    if chars.peek() == Some(&'/') {
                        chars.next();
                    }
                    if chars.peek().is_none() {
                        if kind == Kind::Exact {
                            kind = Kind::Prefix;
                        } else {
                            regex.push_str(".*");
                            kind = Kind::Regex;
                        }
                    } else {
                        regex.push_str("(.*/)?");
                        kind = Kind::Regex;
                    }
                    if first {
                        kind = Kind::Suffix;
                    }
                }
                '*' => {
                    regex.push_str("[^/]*");
                    kind = Kind::Regex;
                }
                '?' => {
                    regex.push_str("[^/]");
                    kind = Kind::Regex;
                }
                '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                    regex.push('\\');
                    regex.push(c);
                }
                '\\' => match chars.next() {
                    Some(next) => {
                        regex.push('\\');
                        regex.push(next);
                        kind = Kind::Regex;
                    }
                    None => return None,
                },
                '[' => {
                    open_class = true;
                    regex.push(c);
                    kind = Kind::Regex;
                }
                ']' => {
                    open_class = false;
                    regex.push(c);
                    kind = Kind::Regex;
                }
                other => regex.push(other),
            }
            first = false;
        }
        if open_class {
            return None;
        }
        Some(match kind {
            Kind::Exact => Self::Exact(pattern.to_owned()),
            Kind::Prefix => Self::Prefix(pattern[..pattern.len() - 2].to_owned()),
            Kind::Suffix => Self::Suffix(pattern[2..].to_owned()),
            Kind::Regex => {
                regex.push('$');
                Self::Regex(Regex::new(&regex).ok()?)
            }
        })
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Self::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|name| path == name)
            }
            Self::Regex(regex) => regex.is_match(path),
        }
    }
}

/// A path cleaned lexically, as Go's `filepath.Clean` does: no empty or `.` elements, `..`
/// resolved where it can be, `.` for nothing.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(dockerignore: &str, path: &str) -> bool {
        Patterns::parse(dockerignore).unwrap().excludes(path)
    }

    /// The examples of docker's `.dockerignore` documentation.
    #[test]
    fn documented_examples() {
        let file = "# comment\n*/temp*\n*/*/temp*\ntemp?\n";
        assert!(excluded(file, "somedir/temporary.txt"));
        assert!(excluded(file, "somedir/temp"));
        assert!(excluded(file, "somedir/subdir/temporary.txt"));
        assert!(excluded(file, "tempa"));
        assert!(excluded(file, "tempb"));
        assert!(!excluded(file, "temporary.txt"));
        assert!(!excluded(file, "temp"));
        assert!(!excluded(file, "a/b/c/temp"));
        assert!(!excluded(file, "# comment"));

        assert!(excluded("**/*.go", "main.go"));
        assert!(excluded("**/*.go", "a/b/c.go"));
        assert!(!excluded("**/*.go", "a/b/c.gox"));

        let readme = "*.md\n!README.md\n";
        assert!(excluded(readme, "CHANGES.md"));
        assert!(!excluded(readme, "README.md"));
        // `*` stays within one element.
        assert!(!excluded(readme, "docs/guide.md"));

        let order = "*.md\n!README*.md\nREADME-secret.md\n";
        assert!(excluded(order, "README-secret.md"));
        assert!(!excluded(order, "README-public.md"));
        assert!(excluded(order, "other.md"));

        let late = "*.md\nREADME-secret.md\n!README*.md\n";
        assert!(!excluded(late, "README-secret.md"));
    }

    #[test]
    fn directories_exclude_what_is_under_them() {
        assert!(excluded("node_modules", "node_modules/a/b.js"));
        assert!(excluded("/node_modules/", "node_modules/a"));
        assert!(excluded("./build//out/../out", "build/out/x"));
        assert!(!excluded("node_modules", "src/node_modules/a"));
        assert!(excluded("**/node_modules", "src/node_modules/a"));
        assert!(excluded("**/node_modules", "node_modules"));
        assert!(!excluded("**/modules", "src/node_modules"));
        assert!(excluded("docs/**", "docs/a/b"));
        assert!(!excluded("docs/**", "docs"));
        assert!(excluded("a/**/z", "a/z"));
        assert!(excluded("a/**/z", "a/b/c/z"));
        assert!(!excluded("a/**/z", "b/a/z"));
        assert!(excluded("**", "anything/at/all"));
        // An exception inside an excluded directory brings back that file only.
        let keep = "secrets\n!secrets/public.pem\n";
        assert!(excluded(keep, "secrets/private.pem"));
        assert!(!excluded(keep, "secrets/public.pem"));
    }

    #[test]
    fn wildcards_classes_and_escapes() {
        assert!(excluded("file?.txt", "file1.txt"));
        assert!(!excluded("file?.txt", "file10.txt"));
        assert!(!excluded("a?b", "a/b"));
        assert!(excluded("[a-c].log", "b.log"));
        assert!(!excluded("[a-c].log", "d.log"));
        assert!(excluded("[^a].log", "b.log"));
        assert!(!excluded("[^a].log", "a.log"));
        assert!(excluded("\\*.txt", "*.txt"));
        assert!(!excluded("\\*.txt", "a.txt"));
        // Regex characters are literal.
        assert!(excluded("a+b(1).txt", "a+b(1).txt"));
        assert!(!excluded("a.b", "aXb"));
        assert!(excluded("  spaced  ", "spaced"));
        assert!(excluded("\u{feff}bom", "bom"));
        // A leading `#` only comments at the start of a line.
        assert!(excluded(" #hash", "#hash"));
    }

    #[test]
    fn bad_patterns_are_one_line() {
        let err = Patterns::parse("ok\n!\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            ".dockerignore line 2 (\"!\") is not a valid pattern: fix it (docker's pattern rules), commit, and push again"
        );
        assert_eq!(Patterns::parse("[a-").unwrap_err().line, 1);
        assert_eq!(Patterns::parse("a\n\nb\\").unwrap_err().line, 3);
        assert_eq!(Patterns::parse("# c\n\n  \n").unwrap().len(), 0);
    }

    /// `.slugignore` matches as `.gitignore` does: a name anywhere, a path from the root.
    #[test]
    fn slugignore_matches_as_gitignore_does() {
        let (patterns, docker) =
            Patterns::parse_slugignore("# art\n*.psd\n/docs/\nlib/tmp\n\n").unwrap();
        assert_eq!(docker, "\n**/*.psd\n/docs\nlib/tmp\n");
        assert_eq!(patterns.len(), 3);
        for gone in [
            "logo.psd",
            "art/logo.psd",
            "docs",
            "docs/guide.txt",
            "lib/tmp/x",
        ] {
            assert!(patterns.excludes(gone), "{gone}");
        }
        for kept in ["logo.psdx", "src/docs/kept.txt", "src/lib/tmp", "README"] {
            assert!(!patterns.excludes(kept), "{kept}");
        }
        // What the filter reads says the same.
        let again = Patterns::parse(&docker).unwrap();
        assert!(again.excludes("art/logo.psd") && !again.excludes("src/docs/kept.txt"));
    }

    #[test]
    fn bad_slugignore_lines_are_one_line_naming_the_file() {
        for (text, line, pattern) in [
            ("a\n!a\n", 2, "!a"),
            ("/\n", 1, "/"),
            ("ok\n[a-\n", 2, "[a-"),
        ] {
            let err = Patterns::parse_slugignore(text).unwrap_err();
            assert_eq!(
                (err.line, err.pattern.as_str()),
                (line, pattern),
                "{text:?}"
            );
        }
        assert_eq!(
            Patterns::parse_slugignore("!keep").unwrap_err().to_string(),
            ".slugignore line 1 (\"!keep\") is not a valid pattern: fix it (.gitignore's rules, without ! lines, as on Heroku), commit, and push again"
        );
    }

    #[test]
    fn cleans_like_go() {
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("/"), "/");
    }
}
