//! Crash points for the crash harness: `BDP_FAILPOINT=before:N` kills the process (SIGKILL, no cleanup)
//! right before the record with seq N is written — every record before it in the same commit is made
//! durable first — and `BDP_FAILPOINT=after:N` right after the commit that holds seq N is durable.
//!
//! Read only in debug builds (the ones tests run) or with the `failpoints` feature; a release build never
//! looks at the variable.

/// Where the armed crash point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

/// The crash point set for this process, if any.
pub fn armed() -> Option<(When, u64)> {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    {
        static ARMED: std::sync::OnceLock<Option<(When, u64)>> = std::sync::OnceLock::new();
        *ARMED.get_or_init(|| parse(&std::env::var("BDP_FAILPOINT").ok()?))
    }
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    {
        None
    }
}

/// `before:N` or `after:N`.
pub fn parse(text: &str) -> Option<(When, u64)> {
    let (when, seq) = text.split_once(':')?;
    let when = match when {
        "before" => When::Before,
        "after" => When::After,
        _ => return None,
    };
    Some((when, seq.parse().ok()?))
}

/// Dies the way a crash does: no destructors, no flush, no session end.
pub fn crash(when: When, seq: u64) -> ! {
    eprintln!("bdp: crash point {when:?} seq {seq} reached: killing myself");
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_refuses_others() {
        assert_eq!(parse("before:7"), Some((When::Before, 7)));
        assert_eq!(parse("after:12"), Some((When::After, 12)));
        assert_eq!(parse("during:3"), None);
        assert_eq!(parse("after:x"), None);
        assert_eq!(parse("after"), None);
    }
}
