//! A fast path for decoding records in the layout bdp writes, with the general decoder as the fallback.
//!
//! Serde decodes an internally tagged enum (`{"type":"…",…}`) by first buffering every field of the object,
//! then decoding the variant from the buffer: two passes and an allocation per value, which made decoding
//! most of the cost of a replay. bdp always writes the envelope fields in a fixed order and the `type` tag
//! first, so for such lines this module reads the envelope by hand and decodes the event in one pass into a
//! struct mirroring its variant. It answers only when the line is in exactly that layout and decodes
//! cleanly; for anything else (older versions, escapes in the envelope strings, another field order, any
//! error) it answers `None` and the general decoder decides, so results and errors are unchanged.
//!
//! The mirrors are generated from the list below, which must name every field of every variant with its
//! serde attributes. Building each `Event` from its mirror names every field, so adding, removing or
//! retyping a field without updating the list is a compile error; the tests check that every kind has a
//! mirror and that the mirrors accept and default exactly what the enum does.

use super::record::SUFFIX_LEN;
use super::{Event, FORMAT_VERSION, Record};

macro_rules! mirrors {
    ($( $kind:literal => $variant:ident { $( $(#[$attr:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {
        $(
            #[allow(non_snake_case)]
            mod $variant {
                #[allow(unused_imports)]
                use crate::event::*;
                // An unknown field defers to the general decoder: serde skips it there after buffering (and
                // so range-checking) its value, which `IgnoredAny` here would not do.
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                pub(super) struct Mirror {
                    /// The tag itself: a duplicated `type` is an error, as in the enum.
                    #[serde(rename = "type")]
                    pub(super) _tag: serde::de::IgnoredAny,
                    $( $(#[$attr])* pub(super) $field: $ty, )*
                }
            }
        )*

        /// Decodes `json`, an event object whose first field is its `type` tag, or says it cannot.
        pub(crate) fn decode_event(json: &str) -> Option<Event> {
            let rest = json.strip_prefix("{\"type\":\"")?;
            let kind = &rest[..rest.find('"')?];
            match kind {
                $( $kind => {
                    let m: $variant::Mirror = serde_json::from_str(json).ok()?;
                    Some(Event::$variant { $( $field: m.$field ),* })
                } )*
                _ => None,
            }
        }

        /// The kinds with a mirror (tests check this is all of them).
        #[cfg(test)]
        const KINDS: &[&str] = &[$( $kind ),*];
    };
}

mirrors! {
    "session_started" => SessionStarted {
        pid: u32,
        #[serde(default)] start_time: Option<u64>,
        host: String,
        version: String,
        #[serde(default)] config: serde_json::Value,
        #[serde(default)] recovers: Option<String>,
    }
    "session_ended" => SessionEnded { reason: SessionEndReason, #[serde(default)] left_running: Vec<IssueId> }
    "issue_claimed" => IssueClaimed { issue: IssueId, actor: String }
    "claim_lost" => ClaimLost { issue: IssueId, #[serde(default)] holder: Option<String>, detail: String }
    "issue_released" => IssueReleased {
        issue: IssueId,
        reason: ReleaseReason,
        #[serde(default)] detail: Option<String>,
    }
    "worktree_created" => WorktreeCreated { issue: IssueId, path: String, branch: String, base: String }
    "worktree_removed" => WorktreeRemoved { issue: IssueId, path: String }
    "spawn_requested" => SpawnRequested {
        issue: IssueId,
        attempt: u32,
        argv: Vec<String>,
        cwd: String,
        marker: String,
        stdout: String,
        stderr: String,
    }
    "agent_spawned" => AgentSpawned { issue: IssueId, attempt: u32, pid: u32, pgid: u32, start_time: Option<u64> }
    "agent_exited" => AgentExited {
        issue: IssueId,
        attempt: u32,
        #[serde(default)] code: Option<i32>,
        #[serde(default)] signal: Option<i32>,
        duration_ms: u64,
        #[serde(default)] timed_out: bool,
        #[serde(default)] usage: Option<AgentUsage>,
        #[serde(default)] session: Option<String>,
    }
    "attempt_abandoned" => AttemptAbandoned { issue: IssueId, attempt: u32, reason: String }
    "phase_changed" => PhaseChanged { issue: IssueId, phase: Phase }
    "check_passed" => CheckPassed { issue: IssueId, attempt: u32, command: String, duration_ms: u64 }
    "check_failed" => CheckFailed {
        issue: IssueId,
        attempt: u32,
        command: String,
        #[serde(default)] code: Option<i32>,
        duration_ms: u64,
    }
    "merge_started" => MergeStarted { issue: IssueId, branch: String, base: String, strategy: MergeStrategy }
    "merged" => Merged { issue: IssueId, commit: String }
    "merge_conflicted" => MergeConflicted { issue: IssueId, detail: String }
    "lock_acquired" => LockAcquired { lock: String, holder_pid: u32, #[serde(default)] issue: Option<IssueId> }
    "lock_released" => LockReleased { lock: String }
    "lock_broken" => LockBroken { lock: String, reason: String }
    "tracker_status_set" => TrackerStatusSet {
        issue: IssueId,
        status: String,
        #[serde(default)] assignee: Option<String>,
        backend: String,
    }
    "tracker_labels_changed" => TrackerLabelsChanged {
        issue: IssueId,
        #[serde(default)] added: Vec<String>,
        #[serde(default)] removed: Vec<String>,
        backend: String,
    }
    "tracker_issue_closed" => TrackerIssueClosed { issue: IssueId, reason: String, backend: String }
    "tracker_calls" => TrackerCalls {
        backend: String,
        #[serde(default)] issues: std::collections::BTreeMap<IssueId, u32>,
        #[serde(default)] other: u32,
    }
    "tracker_down" => TrackerDown { error: String }
    "tracker_back" => TrackerBack { down_ms: u64, waiting: u32 }
    "claims_stopped" => ClaimsStopped { reason: String }
    "hook_ran" => HookRan { issue: IssueId, attempt: u32, hook: Hook, #[serde(default)] code: Option<i32>, duration_ms: u64 }
    "review_verdict" => ReviewVerdict {
        issue: IssueId,
        attempt: u32,
        round: u32,
        verdict: Verdict,
        #[serde(default)] comments: String,
    }
    "file_lock_acquired" => FileLockAcquired {
        holder: String,
        paths: Vec<String>,
        #[serde(default)] shared: bool,
        pid: u32,
        #[serde(default)] start_time: Option<u64>,
        waited_ms: u64,
        #[serde(default)] ttl_ms: Option<u64>,
    }
    "file_lock_refused" => FileLockRefused {
        holder: String,
        paths: Vec<String>,
        held_by: Vec<String>,
        waited_ms: u64,
        #[serde(default)] deadlock: Vec<String>,
    }
    "file_lock_released" => FileLockReleased { holder: String, paths: Vec<String> }
    "file_lock_broken" => FileLockBroken { holder: String, path: String, reason: String, by: String }
    "progress_reported" => ProgressReported {
        issue: IssueId,
        attempt: u32,
        status: String,
        #[serde(default)] percent: Option<u8>,
        #[serde(default)] step: Option<u32>,
        #[serde(default)] steps: Option<u32>,
    }
    "reconcile_finding" => ReconcileFinding { kind: String, #[serde(default)] issue: Option<IssueId>, detail: String }
    "repair_applied" => RepairApplied { kind: String, #[serde(default)] issue: Option<IssueId>, action: String }
    "retry_scheduled" => RetryScheduled {
        issue: IssueId,
        next_attempt: u32,
        backoff_ms: u64,
        reason: String,
        #[serde(default)] carry_on: Option<CarryOn>,
    }
    "log_truncated" => LogTruncated { segment: String, offset: u64, dropped_bytes: u64 }
}

/// Decodes a line (valid UTF-8, which `split_line` accepted and found `seq` in) if it is in the layout bdp
/// writes: `{"seq":N,"v":2,"ts":"…","session":"…","event":{"type":"…",…}` and the chain suffix, with no
/// escapes or control characters in `ts` and `session` and no leading zeros in the numbers.
pub(crate) fn decode_canonical(text: &str, seq: u64) -> Option<Record> {
    let body = text.get(..text.len().checked_sub(SUFFIX_LEN)?)?;
    let rest = body.strip_prefix("{\"seq\":")?;
    let (seq_digits, rest) = number(rest)?;
    let rest = rest.strip_prefix(",\"v\":")?;
    let (v_digits, rest) = number(rest)?;
    if v_digits.parse::<u32>().ok()? != FORMAT_VERSION || seq_digits.parse::<u64>().ok()? != seq {
        return None;
    }
    let rest = rest.strip_prefix(",\"ts\":\"")?;
    let (ts, rest) = plain_string(rest)?;
    let rest = rest.strip_prefix(",\"session\":\"")?;
    let (session, rest) = plain_string(rest)?;
    let json = rest.strip_prefix(",\"event\":")?;
    let event = decode_event(json)?;
    Some(Record { seq, v: FORMAT_VERSION, ts: ts.to_string(), session: session.to_string(), event })
}

/// Leading ASCII digits as JSON allows them (no leading zero unless the number is 0), and the rest.
fn number(s: &str) -> Option<(&str, &str)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    let digits = &s[..len];
    if len == 0 || len > 19 || (len > 1 && digits.starts_with('0')) {
        return None;
    }
    Some((digits, &s[len..]))
}

/// The content of a JSON string with no escapes or control characters, and what follows its closing quote.
fn plain_string(s: &str) -> Option<(&str, &str)> {
    let end = s.bytes().position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
    (s.as_bytes()[end] == b'"').then(|| (&s[..end], &s[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::record::{GENESIS, decode_line, encode_record, split_line};
    use crate::event::{AgentUsage, Hook, MergeStrategy, Phase, ReleaseReason, SessionEndReason, Verdict};

    #[test]
    fn an_unknown_field_is_left_to_the_general_decoder() {
        // Found by the record_decode fuzz target: an unknown field holding a number beyond f64 is skipped
        // by a mirror but refused by the general decoder (it buffers the value as a number).
        let huge = r#"{"type":"merged","issue":"bd-k1","commit":"c","backof_ms":50013325e332}"#;
        assert!(serde_json::from_str::<Event>(huge).is_err());
        assert_eq!(decode_event(huge), None);
        // Any unknown field: the general decoder decides (it ignores it).
        let extra = r#"{"type":"merged","issue":"bd-k1","commit":"c","later":1}"#;
        assert_eq!(decode_event(extra), None);
        assert!(serde_json::from_str::<Event>(extra).is_ok());
    }

    /// One event of every kind, with every optional field set.
    fn samples() -> Vec<Event> {
        let i = || "bd-a1.2".to_string();
        vec![
            Event::SessionStarted {
                pid: 7,
                start_time: Some(9),
                host: "h".into(),
                version: "0.1.0".into(),
                config: serde_json::json!({"agents": 3, "nested": {"a": [1, 2.5, null, "x"]}}),
                recovers: Some("s-0".into()),
            },
            Event::SessionEnded { reason: SessionEndReason::Error, left_running: vec![i(), "b-2".into()] },
            Event::IssueClaimed { issue: i(), actor: "bdp".into() },
            Event::ClaimLost { issue: i(), holder: Some("alice".into()), detail: "d".into() },
            Event::IssueReleased { issue: i(), reason: ReleaseReason::Timeout, detail: Some("slow".into()) },
            Event::WorktreeCreated { issue: i(), path: "p".into(), branch: "b".into(), base: "main".into() },
            Event::WorktreeRemoved { issue: i(), path: "p".into() },
            Event::SpawnRequested {
                issue: i(),
                attempt: 2,
                argv: vec!["agent".into(), "ü \"quoted\"\n".into()],
                cwd: "c".into(),
                marker: "m".into(),
                stdout: "o".into(),
                stderr: "e".into(),
            },
            Event::AgentSpawned { issue: i(), attempt: 2, pid: 10, pgid: 10, start_time: Some(5) },
            Event::AgentExited {
                issue: i(),
                attempt: 2,
                code: Some(-1),
                signal: Some(9),
                duration_ms: 12,
                timed_out: true,
                usage: Some(AgentUsage {
                    cost_micro_usd: Some(42),
                    input_tokens: 1,
                    cached_input_tokens: 2,
                    output_tokens: 3,
                }),
                session: Some("0f6b2c1e-session".into()),
            },
            Event::AttemptAbandoned { issue: i(), attempt: 2, reason: "gone".into() },
            Event::PhaseChanged { issue: i(), phase: Phase::WorktreeReady },
            Event::CheckPassed { issue: i(), attempt: 1, command: "cargo test".into(), duration_ms: 3 },
            Event::CheckFailed { issue: i(), attempt: 1, command: "make".into(), code: Some(2), duration_ms: 4 },
            Event::MergeStarted {
                issue: i(),
                branch: "b".into(),
                base: "main".into(),
                strategy: MergeStrategy::Rebase,
            },
            Event::Merged { issue: i(), commit: "abc".into() },
            Event::MergeConflicted { issue: i(), detail: "d".into() },
            Event::LockAcquired { lock: "merge".into(), holder_pid: 1, issue: Some(i()) },
            Event::LockReleased { lock: "merge".into() },
            Event::LockBroken { lock: "merge".into(), reason: "dead".into() },
            Event::TrackerStatusSet {
                issue: i(),
                status: "open".into(),
                assignee: Some("a".into()),
                backend: "bd".into(),
            },
            Event::TrackerLabelsChanged {
                issue: i(),
                added: vec!["x".into()],
                removed: vec!["y".into()],
                backend: "br".into(),
            },
            Event::TrackerIssueClosed { issue: i(), reason: "r".into(), backend: "jsonl".into() },
            Event::TrackerCalls { backend: "br".into(), issues: [(i(), 4)].into_iter().collect(), other: 1 },
            Event::TrackerDown { error: "x.jsonl:3: bad".into() },
            Event::TrackerBack { down_ms: 2500, waiting: 1 },
            Event::ClaimsStopped { reason: "--max-cost reached: $1.20 of $1.00".into() },
            Event::HookRan { issue: i(), attempt: 1, hook: Hook::BeforeRun, code: Some(0), duration_ms: 120 },
            Event::ReviewVerdict {
                issue: i(),
                attempt: 1,
                round: 1,
                verdict: Verdict::ChangesRequested,
                comments: "name the flag".into(),
            },
            Event::FileLockAcquired {
                holder: "bd-1#2".into(),
                paths: vec!["Cargo.toml".into()],
                shared: false,
                pid: 7,
                start_time: Some(9),
                waited_ms: 3,
                ttl_ms: Some(1_800_000),
            },
            Event::FileLockRefused {
                holder: "bd-1#2".into(),
                paths: vec!["a".into()],
                held_by: vec!["bd-2#1".into()],
                waited_ms: 60_000,
                deadlock: vec![],
            },
            Event::FileLockReleased { holder: "bd-1#2".into(), paths: vec!["Cargo.toml".into()] },
            Event::FileLockBroken {
                holder: "bd-2#1".into(),
                path: "a".into(),
                reason: "its holder is dead".into(),
                by: "bd-1#2".into(),
            },
            Event::ProgressReported {
                issue: i(),
                attempt: 2,
                status: "tests pass; writing docs".into(),
                percent: Some(60),
                step: Some(3),
                steps: Some(5),
            },
            Event::ReconcileFinding { kind: "k".into(), issue: Some(i()), detail: "d".into() },
            Event::RepairApplied { kind: "k".into(), issue: Some(i()), action: "a".into() },
            Event::RetryScheduled { issue: i(), next_attempt: 3, backoff_ms: 5, reason: "r".into(), carry_on: None },
            Event::LogTruncated { segment: "000001.jsonl".into(), offset: 1, dropped_bytes: 2 },
        ]
    }

    #[test]
    fn every_kind_has_a_mirror_and_a_sample() {
        assert_eq!(KINDS, Event::KINDS);
        let kinds: Vec<&str> = samples().iter().map(Event::kind).collect();
        assert_eq!(kinds, Event::KINDS);
        for event in samples() {
            assert_eq!(serde_json::to_value(&event).unwrap()["type"], event.kind(), "{event:?}");
        }
    }

    /// The fast path must give what serde gives, and nothing where serde fails.
    fn agrees(json: &str) {
        let slow = serde_json::from_str::<Event>(json).ok();
        assert_eq!(decode_event(json), slow, "{json}");
    }

    /// The object's JSON with the `type` tag first, as bdp writes it (a `Map` sorts its keys).
    fn tag_first(kind: &str, map: &serde_json::Map<String, serde_json::Value>) -> String {
        let mut out = format!("{{\"type\":\"{kind}\"");
        for (key, value) in map.iter().filter(|(k, _)| *k != "type") {
            out.push_str(&format!(",{}:{value}", serde_json::Value::from(key.as_str())));
        }
        out + "}"
    }

    #[test]
    fn mirrors_accept_and_default_exactly_what_the_enum_does() {
        for event in samples() {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(decode_event(&json).as_ref(), Some(&event), "{json}");
            let serde_json::Value::Object(map) = serde_json::to_value(&event).unwrap() else { panic!() };
            assert_eq!(decode_event(&tag_first(event.kind(), &map)).as_ref(), Some(&event));
            for key in map.keys().filter(|k| *k != "type") {
                // Each field missing, null, or of the wrong type.
                for replacement in [None, Some(serde_json::Value::Null), Some(serde_json::json!({"x": 1}))] {
                    let mut changed = map.clone();
                    match replacement {
                        None => changed.remove(key),
                        Some(v) => changed.insert(key.clone(), v),
                    };
                    agrees(&tag_first(event.kind(), &changed));
                }
            }
            // Unknown fields: the fast path defers (None) and the general decoder decides; a duplicated tag
            // is refused by both.
            agrees(&json.replacen("{\"type\"", "{\"type\":\"x\",\"extra\":[1],\"type\"", 1));
            let extra = format!("{},\"zzz\":{{\"a\":1}}}}", &json[..json.len() - 1]);
            assert_eq!(decode_event(&extra), None, "{extra}");
            assert_eq!(serde_json::from_str::<Event>(&extra).ok().as_ref(), Some(&event), "{extra}");
            let dup_tag = format!("{},\"type\":\"{}\"}}", &json[..json.len() - 1], event.kind());
            assert_eq!(decode_event(&dup_tag), None);
            agrees(&dup_tag);
        }
    }

    fn line(record: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(record, &GENESIS, &mut out);
        out.pop();
        out
    }

    #[test]
    fn canonical_lines_take_the_fast_path_and_decode_like_the_general_decoder() {
        for (n, event) in samples().into_iter().enumerate() {
            let record = Record {
                seq: n as u64 + 1,
                v: FORMAT_VERSION,
                ts: "2026-11-25T06:00:00.000Z".into(),
                session: "s-1".into(),
                event,
            };
            let line = line(&record);
            let text = std::str::from_utf8(&line).unwrap();
            assert_eq!(decode_canonical(text, split_line(&line).unwrap().seq).as_ref(), Some(&record));
            assert_eq!(decode_line(&line).as_ref(), Ok(&record));
        }
    }

    #[test]
    fn anything_but_the_canonical_layout_is_left_to_the_general_decoder() {
        let base = Record {
            seq: 1,
            v: FORMAT_VERSION,
            ts: "t".into(),
            session: "s\"1".into(),
            event: Event::LockReleased { lock: "l".into() },
        };
        // An escaped quote in the session.
        let escaped = line(&base);
        assert_eq!(decode_canonical(std::str::from_utf8(&escaped).unwrap(), 1), None);
        assert_eq!(decode_line(&escaped), Ok(base.clone()));
        let plain = line(&Record { session: "s-1".into(), ..base });
        let text = std::str::from_utf8(&plain).unwrap();
        for (from, to) in [
            ("{\"seq\":1,", "{\"seq\":01,"),
            ("\"v\":2", "\"v\":02"),
            ("\"v\":2", "\"v\":1"),
            ("\"ts\":\"t\"", "\"ts\":\"t\\u0041\""),
            ("\"ts\":\"t\"", "\"ts\": \"t\""),
            ("{\"type\":\"lock_released\",\"lock\":\"l\"}", "{\"lock\":\"l\",\"type\":\"lock_released\"}"),
        ] {
            let changed = text.replacen(from, to, 1);
            assert_ne!(changed, text);
            let seq = split_line(changed.as_bytes()).unwrap().seq;
            assert_eq!(decode_canonical(&changed, seq), None, "{changed}");
        }
    }
}
