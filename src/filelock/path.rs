//! A lock's path: repo-relative, normalized (`./a/../b` is `b`), or a glob. Hostile input is refused
//! with the reason: a path that leaves the repository, an absolute path outside it, a NUL, an empty or
//! overlong path.

use std::path::Path;

/// The longest path accepted (bytes), far beyond any real one.
const MAX_LEN: usize = 4096;

/// A normalized lock path: its parts, `/`-joined, never empty, never leaving the repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockPath {
    parts: Vec<String>,
}

/// Why a path cannot be locked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0:?} is empty")]
    Empty(String),
    #[error("{0:?} holds a NUL byte")]
    Nul(String),
    #[error("{0:?} is longer than {MAX_LEN} bytes")]
    TooLong(String),
    #[error("{0:?} is outside the repository")]
    Outside(String),
}

impl LockPath {
    /// A repo-relative path or glob, normalized.
    pub fn parse(text: &str) -> Result<LockPath, PathError> {
        if text.contains('\0') {
            return Err(PathError::Nul(text.replace('\0', "\\0")));
        }
        if text.len() > MAX_LEN {
            return Err(PathError::TooLong(format!("{}…", &text[..text.floor_char_boundary(40)])));
        }
        if text.starts_with('/') {
            return Err(PathError::Outside(text.to_string()));
        }
        let mut parts: Vec<String> = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(PathError::Outside(text.to_string()));
                    }
                }
                part => parts.push(part.to_string()),
            }
        }
        if parts.is_empty() {
            return Err(PathError::Empty(text.to_string()));
        }
        Ok(LockPath { parts })
    }

    /// A path as a user gives it: repo-relative, or absolute inside one of `roots` (the repository, the
    /// worktree the agent works in).
    pub fn from_user(text: &str, roots: &[&Path]) -> Result<LockPath, PathError> {
        if text.starts_with('/') {
            let inside = roots.iter().find_map(|root| Path::new(text).strip_prefix(root).ok());
            return match inside {
                Some(rest) if !rest.as_os_str().is_empty() => LockPath::parse(&rest.to_string_lossy()),
                _ => Err(PathError::Outside(text.to_string())),
            };
        }
        LockPath::parse(text)
    }

    pub fn as_string(&self) -> String {
        self.parts.join("/")
    }

    fn is_glob(&self) -> bool {
        self.parts.iter().any(|p| p.contains(['*', '?']))
    }

    /// Whether some path could fall under both `self` and `other`.
    pub fn overlaps(&self, other: &LockPath) -> bool {
        match (self.is_glob(), other.is_glob()) {
            (false, false) => is_prefix(&self.parts, &other.parts) || is_prefix(&other.parts, &self.parts),
            (true, false) => covers(&self.parts, &other.parts),
            (false, true) => covers(&other.parts, &self.parts),
            // Two globs: compared by their literal parts before the first wildcard (may say yes for two
            // that could never meet, never no for two that could: a lock is refused rather than doubled).
            (true, true) => {
                let lit =
                    |p: &LockPath| p.parts.iter().take_while(|s| !s.contains(['*', '?'])).cloned().collect::<Vec<_>>();
                let (a, b) = (lit(self), lit(other));
                is_prefix(&a, &b) || is_prefix(&b, &a)
            }
        }
    }
}

impl std::fmt::Display for LockPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_string())
    }
}

fn is_prefix(a: &[String], b: &[String]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Whether glob `pattern` covers `path`, or something under it (a lock on a directory covers its files),
/// or a directory the path is in (the glob may cover the directory's files).
fn covers(pattern: &[String], path: &[String]) -> bool {
    match (pattern.first(), path.first()) {
        (None, _) => true,
        (Some(_), None) => true,
        (Some(p), Some(_)) if p == "**" => covers(&pattern[1..], path) || covers(pattern, &path[1..]),
        (Some(p), Some(s)) => part_matches(p.as_bytes(), s.as_bytes()) && covers(&pattern[1..], &path[1..]),
    }
}

/// `*` and `?` within one path part.
fn part_matches(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => part_matches(&p[1..], s) || (!s.is_empty() && part_matches(p, &s[1..])),
        (Some(b'?'), Some(_)) => part_matches(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => part_matches(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> LockPath {
        LockPath::parse(s).unwrap()
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(p("./a/../b").as_string(), "b");
        assert_eq!(p("src//db/./x.rs").as_string(), "src/db/x.rs");
        assert_eq!(p("a/b/..").as_string(), "a");
        assert_eq!(p("ünïcödé/файл.rs").as_string(), "ünïcödé/файл.rs");
    }

    #[test]
    fn hostile_paths_are_refused_naming_them() {
        assert_eq!(LockPath::parse("../etc/passwd"), Err(PathError::Outside("../etc/passwd".into())));
        assert_eq!(LockPath::parse("a/../../x"), Err(PathError::Outside("a/../../x".into())));
        assert_eq!(LockPath::parse("/etc/passwd"), Err(PathError::Outside("/etc/passwd".into())));
        assert_eq!(LockPath::parse("a\0b"), Err(PathError::Nul("a\\0b".into())));
        assert_eq!(LockPath::parse("./."), Err(PathError::Empty("./.".into())));
        assert!(matches!(LockPath::parse(&"x/".repeat(3000)), Err(PathError::TooLong(_))));
        let root = Path::new("/repo");
        assert_eq!(LockPath::from_user("/repo/src/a.rs", &[root]).unwrap().as_string(), "src/a.rs");
        assert_eq!(LockPath::from_user("/elsewhere/a.rs", &[root]), Err(PathError::Outside("/elsewhere/a.rs".into())));
        assert_eq!(LockPath::from_user("/repo", &[root]), Err(PathError::Outside("/repo".into())));
    }

    #[test]
    fn overlaps() {
        let yes = [
            ("Cargo.toml", "Cargo.toml"),
            ("src", "src/a.rs"),
            ("src/db/**", "src/db/schema/x.sql"),
            ("src/db/**", "src/db"),
            ("src/*.rs", "src/main.rs"),
            ("**", "anything/at/all"),
            ("src/?.rs", "src/a.rs"),
            ("src/**/mod.rs", "src/a/b/mod.rs"),
            ("src/**", "src/*.rs"),
            ("migrations/*", "migrations/**"),
        ];
        for (a, b) in yes {
            assert!(p(a).overlaps(&p(b)) && p(b).overlaps(&p(a)), "{a} and {b}");
        }
        let no = [
            ("Cargo.toml", "Cargo.lock"),
            ("src/a.rs", "src/ab.rs"),
            ("src/*.rs", "src/db/x.rs"),
            ("src/*.rs", "src/main.c"),
            ("src/db/**", "src/dbx/a"),
            ("docs/**", "src/**"),
        ];
        for (a, b) in no {
            assert!(!p(a).overlaps(&p(b)) && !p(b).overlaps(&p(a)), "{a} and {b}");
        }
    }
}
