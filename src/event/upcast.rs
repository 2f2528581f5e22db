//! Upcasting: rewriting the event JSON of an older format version into the current shape, before it is
//! deserialized. The bytes on disk are never changed (the hash chain covers them); only the decoded
//! value is. Pure code.
//!
//! Version history:
//! - v1 (bdp 0.0.x, pre-release): the claim event was called `claimed`; `agent_spawned` had no `pgid`
//!   (agents were always session leaders, so pgid = pid) and no `start_time` (unknown: never adopted).
//! - v2 (current): `issue_claimed`; `agent_spawned` carries `pgid` and `start_time`.

use serde_json::Value;

use super::record::DecodeError;

/// Rewrites `event` written with format `version` into the current shape.
pub fn upcast(version: u32, mut event: Value) -> Result<Value, DecodeError> {
    if version == 1 {
        let obj = event
            .as_object_mut()
            .ok_or(DecodeError::BadEvent { kind: "?".into(), message: "the event is not a JSON object".into() })?;
        match obj.get("type").and_then(Value::as_str) {
            Some("claimed") => {
                obj.insert("type".into(), Value::from("issue_claimed"));
            }
            Some("agent_spawned") => {
                let pid = obj.get("pid").cloned().unwrap_or(Value::Null);
                obj.entry("pgid").or_insert(pid);
                obj.entry("start_time").or_insert(Value::Null);
            }
            _ => {}
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_claimed_becomes_issue_claimed() {
        let up = upcast(1, json!({"type":"claimed","issue":"bd-1","actor":"bdp"})).unwrap();
        assert_eq!(up, json!({"type":"issue_claimed","issue":"bd-1","actor":"bdp"}));
    }

    #[test]
    fn v1_agent_spawned_gains_pgid_and_an_unknown_start_time() {
        let up = upcast(1, json!({"type":"agent_spawned","issue":"bd-1","attempt":1,"pid":42})).unwrap();
        assert_eq!(up, json!({"type":"agent_spawned","issue":"bd-1","attempt":1,"pid":42,"pgid":42,"start_time":null}));
    }

    #[test]
    fn current_events_pass_through_unchanged() {
        let ev = json!({"type":"claimed","issue":"bd-1"});
        assert_eq!(upcast(2, ev.clone()).unwrap(), ev);
    }
}
