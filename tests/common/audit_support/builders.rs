//! The builders of the audit fixtures, one per fixture (see replay-fixtures/README.md): each writes the
//! log with the fixed clock, the tracker's view and the files the finding needs. Fixtures that also need
//! git or an index get it at test time ([`super::around`]).

use std::path::Path;

use bdp::event::{Event, Phase, ReleaseReason, SessionEndReason};
use bdp::exit_file::ExitRecord;

use super::pieces::*;
use super::{DEAD_ORCHESTRATOR, NOT_INITS_START};
use crate::common::writer;

/// A session that ended: one issue done, one open. Nothing to find (exit 0).
pub fn build_clean(root: &Path) {
    let w = writer(root, "s-20261125-060000-a0");
    append(&w, vec![started()]);
    append(&w, crate::common::issue_done("bd-a1", 1, 4_194_010, "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"));
    append(&w, vec![Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] }]);
    tracker(root, &[("bd-a1", "closed", Some("bdp"), &[]), ("bd-a2", "open", None, &[])]);
}

/// The clean log with one value of record 4 edited: the chain breaks there (log_damaged, for a person).
pub fn build_log_damaged(root: &Path) {
    build_clean(root);
    let segment = crate::common::segment(root);
    let text = std::fs::read_to_string(&segment).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert!(lines[3].starts_with("{\"seq\":4,") && lines[3].contains(".bdp/worktrees/bd-a1"));
    lines[3] = lines[3].replacen(".bdp/worktrees/bd-a1", ".bdp/worktrees/bd-zz", 1);
    std::fs::write(&segment, lines.join("\n") + "\n").unwrap();
}

/// Two agents of a crashed session are gone and left exit files (exit 0; killed by TERM): the log has
/// neither exit (agent_exited_unrecorded, applied by `bdp run`).
pub fn build_agent_exited_unrecorded(root: &Path) {
    let s = "s-20261125-060000-e1";
    let mut events = claimed("bd-e1", true);
    events.extend(running(s, "bd-e1", 1, 4_194_101, 1101));
    events.extend(claimed("bd-e2", true));
    events.extend(running(s, "bd-e2", 1, 4_194_102, 1102));
    crashed_session(root, s, events);
    exit_file(
        root,
        "bd-e1",
        1,
        &exit_record(&ExitRecord {
            code: Some(0),
            signal: None,
            duration_ms: 65_000,
            error: None,
            pid: Some(4_194_101),
        }),
    );
    exit_file(
        root,
        "bd-e2",
        1,
        &exit_record(&ExitRecord {
            code: None,
            signal: Some(15),
            duration_ms: 1_200,
            error: None,
            pid: Some(4_194_102),
        }),
    );
    tracker(root, &[("bd-e1", "in_progress", Some("bdp"), &[]), ("bd-e2", "in_progress", Some("bdp"), &[])]);
}

/// Four agents of a crashed session with no exit recorded: one gone without an exit file, one whose pid
/// is reused (pid 1, which did not start then), one whose exit file cannot be read, and one recorded with
/// no start time whose pid runs (pid 1: it cannot be told from a reused pid, so it is never adopted).
pub fn build_agent_crashed(root: &Path) {
    let s = "s-20261125-060000-c1";
    let mut events = claimed("bd-c1", true);
    events.extend(running(s, "bd-c1", 1, 4_194_103, 1103));
    events.extend(claimed("bd-c2", true));
    events.extend(running(s, "bd-c2", 1, 1, NOT_INITS_START));
    events.extend(claimed("bd-c3", true));
    events.extend(running(s, "bd-c3", 1, 4_194_104, 1104));
    events.extend(claimed("bd-c4", true));
    events.extend([
        requested(s, "bd-c4", 1),
        Event::AgentSpawned { issue: "bd-c4".into(), attempt: 1, pid: 1, pgid: 1, start_time: None },
    ]);
    crashed_session(root, s, events);
    exit_file(root, "bd-c3", 1, b"{\"code\": 0, \"dura");
    tracker(
        root,
        &[
            ("bd-c1", "in_progress", Some("bdp"), &[]),
            ("bd-c2", "in_progress", Some("bdp"), &[]),
            ("bd-c3", "in_progress", Some("bdp"), &[]),
            ("bd-c4", "in_progress", Some("bdp"), &[]),
        ],
    );
}

/// A spawn asked for and never confirmed; the wrapper ran and left an exit file (exit 1) naming its pid.
pub fn build_spawn_unconfirmed_exited(root: &Path) {
    let s = "s-20261125-060000-u1";
    let mut events = claimed("bd-x1", true);
    events.push(requested(s, "bd-x1", 1));
    crashed_session(root, s, events);
    exit_file(
        root,
        "bd-x1",
        1,
        &exit_record(&ExitRecord {
            code: Some(1),
            signal: None,
            duration_ms: 3_000,
            error: None,
            pid: Some(4_194_105),
        }),
    );
    tracker(root, &[("bd-x1", "in_progress", Some("bdp"), &[])]);
}

/// A spawn asked for and never confirmed, and nothing of it anywhere.
pub fn build_spawn_unconfirmed_gone(root: &Path) {
    let s = "s-20261125-060000-u2";
    let mut events = claimed("bd-x2", true);
    events.push(requested(s, "bd-x2", 1));
    crashed_session(root, s, events);
    tracker(root, &[("bd-x2", "in_progress", Some("bdp"), &[])]);
}

/// Seven claims a crash stopped between steps, one per step to carry on with: no worktree (s1), worktree
/// and no attempt (s2), exited 0 and not checked (s3), checked and not merged (s4), merged and not closed
/// (s5), closed and not released (s6), failed with a retry scheduled (s7).
pub fn build_step_interrupted(root: &Path) {
    let s = "s-20261125-060000-s1";
    let mut events = claimed("bd-s1", false);
    events.extend(claimed("bd-s2", true));
    for (n, issue) in ["bd-s3", "bd-s4", "bd-s5", "bd-s6"].iter().enumerate() {
        events.extend(claimed(issue, true));
        events.extend(running(s, issue, 1, 4_194_110 + n as u32, 1110 + n as u64));
        events.extend(exited(issue, 1, 0));
    }
    for issue in ["bd-s4", "bd-s5", "bd-s6"] {
        events.extend(check_passed(issue));
    }
    for (issue, commit) in
        [("bd-s5", "5555555555555555555555555555555555555555"), ("bd-s6", "6666666666666666666666666666666666666666")]
    {
        events.push(merge_started(issue));
        events.push(Event::Merged { issue: issue.into(), commit: commit.into() });
        events.push(Event::PhaseChanged { issue: issue.into(), phase: Phase::Merged });
    }
    events.push(Event::TrackerIssueClosed {
        issue: "bd-s6".into(),
        reason: "bdp: merged 666666666666 into main".into(),
        backend: "jsonl".into(),
    });
    events.extend(claimed("bd-s7", true));
    events.extend(running(s, "bd-s7", 1, 4_194_117, 1117));
    events.extend(exited("bd-s7", 1, 3));
    events.push(Event::RetryScheduled {
        issue: "bd-s7".into(),
        next_attempt: 2,
        backoff_ms: 10_000,
        reason: "exit 3".into(),
        carry_on: None,
    });
    crashed_session(root, s, events);
    let mut issues: Vec<(&str, &str, Option<&str>, &[&str])> = Vec::new();
    for id in ["bd-s1", "bd-s2", "bd-s3", "bd-s4", "bd-s5", "bd-s7"] {
        issues.push((id, "in_progress", Some("bdp"), &[]));
    }
    issues.push(("bd-s6", "closed", Some("bdp"), &[]));
    tracker(root, &issues);
}

/// Claimed in the log, open and unassigned in the tracker: t1 plainly (claim it again), t2 labelled
/// `bdp:failed` (bdp was giving it back: drop the claim).
pub fn build_claim_not_in_tracker(root: &Path) {
    let mut events = claimed("bd-t1", true);
    events.extend(claimed("bd-t2", true));
    crashed_session(root, "s-20261125-060000-t1", events);
    tracker(root, &[("bd-t1", "open", None, &[]), ("bd-t2", "open", None, &["bdp:failed"])]);
}

/// Claimed in the log; the tracker gives it to alice.
pub fn build_claim_taken(root: &Path) {
    crashed_session(root, "s-20261125-060000-t3", claimed("bd-t3", true));
    tracker(root, &[("bd-t3", "in_progress", Some("alice"), &[])]);
}

/// Claimed in the log; closed in the tracker by someone else.
pub fn build_claim_closed_elsewhere(root: &Path) {
    crashed_session(root, "s-20261125-060000-t4", claimed("bd-t4", true));
    tracker(root, &[("bd-t4", "closed", Some("alice"), &[])]);
}

/// Claimed in the log; the tracker has no such issue.
pub fn build_claimed_issue_missing(root: &Path) {
    crashed_session(root, "s-20261125-060000-t5", claimed("bd-t5", true));
    tracker(root, &[("bd-other", "open", None, &[])]);
}

/// `in_progress` and assigned to bdp in the tracker with no claim in the log: u1 never claimed, u3 released
/// at shutdown (the tracker write did not happen). u2 is alice's: not bdp's business.
pub fn build_tracker_claim_without_log(root: &Path) {
    let mut events = claimed("bd-u3", false);
    events.push(Event::IssueReleased {
        issue: "bd-u3".into(),
        reason: ReleaseReason::Shutdown,
        detail: Some("bdp stopped".into()),
    });
    let w = writer(root, "s-20261125-060000-v1");
    append(&w, vec![started()]);
    append(&w, events);
    append(&w, vec![Event::SessionEnded { reason: SessionEndReason::Stopped, left_running: vec![] }]);
    tracker(
        root,
        &[
            ("bd-u1", "in_progress", Some("bdp"), &[]),
            ("bd-u2", "in_progress", Some("alice"), &[]),
            ("bd-u3", "in_progress", Some("bdp"), &[]),
        ],
    );
}

/// Locks in the log whose holders are gone: the merge lock (dead pid: break it), and the lock of the
/// still-claimed h1 whose holder's pid is reused (pid 1, with a start time that is not init's: `bdp run`
/// takes it over with the claim).
pub fn build_lock_holder_dead(root: &Path) {
    let mut events = claimed("bd-h1", true);
    events.insert(2, Event::LockAcquired { lock: "issue:bd-h1".into(), holder_pid: 1, issue: Some("bd-h1".into()) });
    events.push(Event::LockAcquired { lock: "merge".into(), holder_pid: 4_194_120, issue: None });
    crashed_session(root, "s-20261125-060000-h1", events);
    lock_file(root, "issue:bd-h1", &holder(1, NOT_INITS_START));
    lock_file(root, "merge", &holder(4_194_120, 1120));
    tracker(root, &[("bd-h1", "in_progress", Some("bdp"), &[])]);
}

/// The lock of f1, which was closed and released without giving its lock back.
pub fn build_lock_of_finished_issue(root: &Path) {
    let w = writer(root, "s-20261125-060000-f1");
    append(&w, vec![started()]);
    let mut events = claimed("bd-f1", false);
    events.extend([
        Event::LockAcquired { lock: "issue:bd-f1".into(), holder_pid: DEAD_ORCHESTRATOR, issue: Some("bd-f1".into()) },
        Event::TrackerIssueClosed { issue: "bd-f1".into(), reason: "done by hand".into(), backend: "jsonl".into() },
        Event::IssueReleased { issue: "bd-f1".into(), reason: ReleaseReason::Done, detail: None },
        Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] },
    ]);
    append(&w, events);
    lock_file(root, "issue:bd-f1", &holder(DEAD_ORCHESTRATOR, 1));
    tracker(root, &[("bd-f1", "closed", Some("bdp"), &[])]);
}

/// Lock files with no lock in the log: one naming a dead holder, one with no holder in it.
pub fn build_lock_file_without_lock(root: &Path) {
    let w = writer(root, "s-20261125-060000-g1");
    append(&w, vec![started(), Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] }]);
    lock_file(root, "issue:bd-g1", &holder(4_194_121, 1121));
    lock_file(root, "merge", "not a holder");
    tracker(root, &[("bd-g1", "open", None, &[])]);
}

/// The merge lock in the log, held by a process that runs (pid 1, no file to give its start time), and no
/// lock file for it.
pub fn build_lock_file_missing(root: &Path) {
    let w = writer(root, "s-20261125-060000-g2");
    append(
        &w,
        vec![
            started(),
            Event::LockAcquired { lock: "merge".into(), holder_pid: 1, issue: None },
            Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] },
        ],
    );
    tracker(root, &[("bd-g2", "open", None, &[])]);
}

/// w1 failed and was released, its worktree and branch left behind; w2's merge conflicted, and bdp keeps
/// its worktree and branch for a person on purpose (no finding). Around it: [`worktrees_around`].
pub fn build_worktree_without_claim(root: &Path) {
    let s = "s-20261125-060000-w1";
    let w = writer(root, s);
    append(&w, vec![started()]);
    let mut events = claimed("bd-w1", true);
    events.extend(running(s, "bd-w1", 1, 4_194_130, 1130));
    events.extend(exited("bd-w1", 1, 1));
    events.push(Event::IssueReleased {
        issue: "bd-w1".into(),
        reason: ReleaseReason::Failed,
        detail: Some("exit 1".into()),
    });
    events.extend(claimed("bd-w2", true));
    events.extend(running(s, "bd-w2", 1, 4_194_131, 1131));
    events.extend(exited("bd-w2", 1, 0));
    events.extend(check_passed("bd-w2"));
    events.push(merge_started("bd-w2"));
    events.push(Event::MergeConflicted { issue: "bd-w2".into(), detail: "README".into() });
    events.push(Event::IssueReleased { issue: "bd-w2".into(), reason: ReleaseReason::Conflict, detail: None });
    events.push(Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] });
    append(&w, events);
    tracker(root, &[("bd-w1", "open", None, &["bdp:failed"]), ("bd-w2", "open", None, &["bdp:conflict"])]);
}

/// `bdp/bd-b1` was never claimed; `bdp/bd-b2` belongs to an issue released as abandoned. Around it:
/// [`branches_around`].
pub fn build_branch_without_claim(root: &Path) {
    let w = writer(root, "s-20261125-060000-b1");
    append(&w, vec![started()]);
    let mut events = claimed("bd-b2", false);
    events.push(Event::ClaimLost { issue: "bd-b2".into(), holder: Some("alice".into()), detail: "taken".into() });
    events.push(Event::IssueReleased { issue: "bd-b2".into(), reason: ReleaseReason::Abandoned, detail: None });
    events.push(Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] });
    append(&w, events);
    tracker(root, &[("bd-b2", "in_progress", Some("alice"), &[])]);
}

/// m1's check passed and its merge started; the crash came before `merged` was written. Around it:
/// [`merged_around`] (the branch is in main).
pub fn build_merge_unrecorded(root: &Path) {
    let s = "s-20261125-060000-m1";
    let mut events = claimed("bd-m1", true);
    events.extend(running(s, "bd-m1", 1, 4_194_140, 1140));
    events.extend(exited("bd-m1", 1, 0));
    events.extend(check_passed("bd-m1"));
    events.push(merge_started("bd-m1"));
    crashed_session(root, s, events);
    tracker(root, &[("bd-m1", "in_progress", Some("bdp"), &[])]);
}

/// m2 and m3: merges started, their end not written. Around it: [`unmerged_around`] (m2's branch is not
/// in main; m3's branch is gone).
pub fn build_merge_interrupted(root: &Path) {
    let s = "s-20261125-060000-m2";
    let mut events = Vec::new();
    for (n, issue) in ["bd-m2", "bd-m3"].iter().enumerate() {
        events.extend(claimed(issue, true));
        events.extend(running(s, issue, 1, 4_194_141 + n as u32, 1141 + n as u64));
        events.extend(exited(issue, 1, 0));
        events.extend(check_passed(issue));
        events.push(merge_started(issue));
    }
    crashed_session(root, s, events);
    tracker(root, &[("bd-m2", "in_progress", Some("bdp"), &[]), ("bd-m3", "in_progress", Some("bdp"), &[])]);
}
