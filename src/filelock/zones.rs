//! Ownership rules: which issues must not run at the same time because of the files they touch. Pure.
//!
//! An issue declares the paths it touches: labels `paths:GLOB[,GLOB…]`, or `files` (an array of
//! strings) in its metadata. `[ownership]` in `.bdp/config.toml` maps path globs to a mode:
//!
//! - `exclusive`: one issue at a time touches the zone. Two issues that declare paths in it never run at
//!   once, even when their own paths differ (`migrations/0001.sql`, `migrations/0002.sql`).
//! - `sequential`: as `exclusive`, and in the order the issues were made (oldest first, among those that can
//!   run now): for numbered migrations, a changelog, schema versions.
//!
//! Paths two issues both declare collide without any rule (a declared path is the issue's own).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::LockPath;
use crate::plan::Issue;

/// How a zone is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneMode {
    Exclusive,
    Sequential,
}

impl ZoneMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneMode::Exclusive => "exclusive",
            ZoneMode::Sequential => "sequential",
        }
    }
}

/// One ownership rule: a path or glob, and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub path: LockPath,
    pub mode: ZoneMode,
}

/// The label prefix an issue declares its paths with.
pub const PATHS_LABEL: &str = "paths:";

/// The paths an issue declares, and what it declares that is not a path bdp accepts (with why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    pub paths: Vec<LockPath>,
    pub bad: Vec<String>,
}

/// What `issue` declares it touches: `paths:` labels (comma-separated) and `files` in its metadata.
pub fn declared(issue: &Issue) -> Declared {
    let mut out = Declared::default();
    let mut texts: Vec<String> = issue
        .labels
        .iter()
        .filter_map(|l| l.strip_prefix(PATHS_LABEL))
        .flat_map(|list| list.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    texts.extend(issue.files.iter().cloned());
    for text in texts {
        match LockPath::parse(&text) {
            Ok(path) => {
                if !out.paths.contains(&path) {
                    out.paths.push(path);
                }
            }
            Err(e) => out.bad.push(format!("{}: {e}", issue.id)),
        }
    }
    out
}

/// Why two issues that declare `a` and `b` may not run at once, if they may not: the first zone both
/// touch, else the first path both declare.
pub fn collision(a: &[LockPath], b: &[LockPath], zones: &[Zone]) -> Option<String> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    for zone in zones {
        let touches = |paths: &[LockPath]| paths.iter().any(|p| p.overlaps(&zone.path));
        if touches(a) && touches(b) {
            return Some(format!("both touch {} ({} zone)", zone.path.as_string(), zone.mode.as_str()));
        }
    }
    for p in a {
        if let Some(q) = b.iter().find(|q| p.overlaps(q)) {
            let shown = if p == q { p.as_string() } else { format!("{} and {}", p.as_string(), q.as_string()) };
            return Some(format!("both touch {shown}"));
        }
    }
    None
}

/// The sequential zones `paths` touch.
pub fn sequential_zones<'a>(paths: &[LockPath], zones: &'a [Zone]) -> Vec<&'a Zone> {
    zones.iter().filter(|z| z.mode == ZoneMode::Sequential && paths.iter().any(|p| p.overlaps(&z.path))).collect()
}

/// Made-before order: `created_at`, then the id (an issue without a date comes last).
fn age(i: &Issue) -> (bool, &str, &str) {
    (i.created_at.is_none(), i.created_at.as_deref().unwrap_or_default(), &i.id)
}

/// The issue `issue` must wait for in a sequential zone: among `runnable` (the issues that can run now,
/// running ones included), the oldest one made before it that touches the same zone; with the zone.
pub fn waits_for<'a>(
    issue: &Issue,
    paths: &[LockPath],
    runnable: &[(&'a Issue, &[LockPath])],
    zones: &[Zone],
) -> Option<(&'a Issue, String)> {
    for zone in sequential_zones(paths, zones) {
        let earlier = runnable
            .iter()
            .filter(|(other, _)| other.id != issue.id && age(other) < age(issue))
            .filter(|(_, theirs)| theirs.iter().any(|p| p.overlaps(&zone.path)))
            .min_by_key(|(other, _)| age(other));
        if let Some((other, _)) = earlier {
            return Some((other, zone.path.as_string()));
        }
    }
    None
}

/// Two issues that may not run at once, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collision {
    pub a: String,
    pub b: String,
    pub why: String,
}

/// Every pair of `issues` (with what each declares) that may not run at once, in the order given.
pub fn collisions(issues: &[(&Issue, &[LockPath])], zones: &[Zone]) -> Vec<Collision> {
    let mut out = Vec::new();
    for (i, (a, pa)) in issues.iter().enumerate() {
        for (b, pb) in &issues[i + 1..] {
            if let Some(why) = collision(pa, pb, zones) {
                out.push(Collision { a: a.id.clone(), b: b.id.clone(), why });
            }
        }
    }
    out
}

/// The order issues in each sequential zone run in: the zone, and the ids oldest first.
pub fn sequences(issues: &[(&Issue, &[LockPath])], zones: &[Zone]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for zone in zones.iter().filter(|z| z.mode == ZoneMode::Sequential) {
        let mut members: Vec<&Issue> =
            issues.iter().filter(|(_, p)| p.iter().any(|p| p.overlaps(&zone.path))).map(|(i, _)| *i).collect();
        if members.len() < 2 {
            continue;
        }
        members.sort_by_key(|i| age(i));
        out.insert(zone.path.as_string(), members.iter().map(|i| i.id.clone()).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> LockPath {
        LockPath::parse(s).unwrap()
    }

    fn issue(id: &str, created: &str, labels: &[&str], files: &[&str]) -> Issue {
        Issue {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            files: files.iter().map(|f| f.to_string()).collect(),
            created_at: Some(created.to_string()),
            ..Issue::open(id)
        }
    }

    #[test]
    fn labels_and_metadata_declare_paths_and_bad_ones_are_named() {
        let i = issue(
            "bd-1",
            "2026-01-01",
            &["backend", "paths:src/db/**, Cargo.toml", "paths:../x"],
            &["./Cargo.toml", "a/b"],
        );
        let d = declared(&i);
        assert_eq!(d.paths, [p("src/db/**"), p("Cargo.toml"), p("a/b")]);
        assert_eq!(d.bad, ["bd-1: \"../x\" is outside the repository"]);
    }

    #[test]
    fn shared_paths_and_zones_collide_and_the_rest_do_not() {
        let zones = [
            Zone { path: p("migrations/**"), mode: ZoneMode::Sequential },
            Zone { path: p("Cargo.lock"), mode: ZoneMode::Exclusive },
        ];
        assert_eq!(collision(&[p("Cargo.toml")], &[p("Cargo.toml")], &zones).unwrap(), "both touch Cargo.toml");
        assert_eq!(collision(&[p("src/**")], &[p("src/a.rs")], &zones).unwrap(), "both touch src/** and src/a.rs");
        assert_eq!(
            collision(&[p("migrations/0001.sql")], &[p("migrations/0002.sql")], &zones).unwrap(),
            "both touch migrations/** (sequential zone)"
        );
        assert_eq!(collision(&[p("src/a.rs")], &[p("src/b.rs")], &zones), None);
        assert_eq!(collision(&[], &[p("Cargo.lock")], &zones), None, "nothing declared: no collision");
    }

    #[test]
    fn a_sequential_zone_goes_oldest_first_among_the_runnable() {
        let zones = [Zone { path: p("migrations/**"), mode: ZoneMode::Sequential }];
        let old = issue("bd-9", "2026-01-01T00:00:00Z", &["paths:migrations/0001.sql"], &[]);
        let new = issue("bd-2", "2026-02-01T00:00:00Z", &["paths:migrations/0002.sql"], &[]);
        let other = issue("bd-3", "2025-01-01T00:00:00Z", &["paths:src/x.rs"], &[]);
        let (po, pn, px) = (declared(&old).paths, declared(&new).paths, declared(&other).paths);
        let runnable = [(&old, po.as_slice()), (&new, pn.as_slice()), (&other, px.as_slice())];
        let (waited, zone) = waits_for(&new, &pn, &runnable, &zones).unwrap();
        assert_eq!((waited.id.as_str(), zone.as_str()), ("bd-9", "migrations/**"));
        assert!(waits_for(&old, &po, &runnable, &zones).is_none(), "the oldest goes first");
        assert!(
            waits_for(&new, &pn, &runnable[1..], &zones).is_none(),
            "an older one that cannot run is not waited for"
        );
        let seq = sequences(&runnable, &zones);
        assert_eq!(seq["migrations/**"], ["bd-9", "bd-2"]);
        let all = collisions(&runnable, &zones);
        assert_eq!(
            all,
            [Collision {
                a: "bd-9".into(),
                b: "bd-2".into(),
                why: "both touch migrations/** (sequential zone)".into()
            }]
        );
    }
}
