//! The plain issue model every tracker backend produces and the planner consumes.
//!
//! Built from one beads JSON object (a line of `.beads/issues.jsonl`, or an element of `bd`/`br` `--json`
//! output). Only the fields planning needs are typed; the backends keep the original JSON for everything
//! else. Pure: no I/O. Unknown fields are ignored here (and kept byte-for-byte by the JSONL writer).

use serde::Serialize;
use serde_json::Value;

/// The statuses beads knows. Anything else is a custom status: not ready, and reported.
pub const KNOWN_STATUSES: &[&str] = &["open", "in_progress", "blocked", "deferred", "closed", "pinned", "hooked"];

/// Issue types that are never ready work (bd's `readyWorkExcludeTypes`).
pub const EXCLUDED_TYPES: &[&str] = &["merge-request", "gate", "molecule", "message", "agent", "role", "rig"];

/// Dependency types that block the dependent while the target is active.
pub const BLOCKING_DEP_TYPES: &[&str] = &["blocks", "conditional-blocks"];

/// One edge, stored on the dependent issue: this issue depends on `depends_on_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub depends_on_id: String,
    #[serde(rename = "type")]
    pub dep_type: String,
    /// `metadata` as a JSON text (beads stores it as a string holding JSON); `waits-for` reads its gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

impl Dependency {
    /// A dependency of type `kind` (`blocks`, `parent-child`, …) on `on`, without metadata.
    pub fn on(on: &str, kind: &str) -> Dependency {
        Dependency { depends_on_id: on.to_string(), dep_type: kind.to_string(), metadata: None }
    }

    pub fn is_blocking(&self) -> bool {
        BLOCKING_DEP_TYPES.contains(&self.dep_type.as_str())
    }
    pub fn is_parent_child(&self) -> bool {
        self.dep_type == "parent-child"
    }
    pub fn is_waits_for(&self) -> bool {
        self.dep_type == "waits-for"
    }
    /// For a `waits-for` edge: true when the gate is `any-children` (else `all-children`, bd's default,
    /// also on empty or invalid metadata).
    pub fn waits_for_any_child(&self) -> bool {
        let Some(text) = self.metadata.as_deref() else { return false };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map.get("gate").and_then(Value::as_str) == Some("any-children"),
            _ => false,
        }
    }
}

/// The planner's view of one issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub id: String,
    pub title: String,
    pub status: String,
    /// 0 (P0) is the highest. Missing priority reads as 2 (bd's default).
    pub priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defer_until: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ephemeral: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_minutes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// `files` of its metadata: the paths it says it touches (see `crate::filelock::zones`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// The texts an agent's prompt is made of (not used by planning, not in plan output).
    #[serde(skip)]
    pub text: IssueText,
}

/// The free-text fields of an issue: hostile data from a shared repo, only ever written into a prompt file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueText {
    pub description: Option<String>,
    pub design: Option<String>,
    pub acceptance_criteria: Option<String>,
    pub notes: Option<String>,
}

/// Why a JSON object is not an issue bdp can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueShapeError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}` has the wrong type (expected {expected})")]
    WrongType { field: &'static str, expected: &'static str },
}

fn opt_str(obj: &serde_json::Map<String, Value>, field: &'static str) -> Result<Option<String>, IssueShapeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(IssueShapeError::WrongType { field, expected: "string" }),
    }
}

fn opt_bool(obj: &serde_json::Map<String, Value>, field: &'static str) -> Result<bool, IssueShapeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) => Ok(n.as_i64() != Some(0)),
        Some(_) => Err(IssueShapeError::WrongType { field, expected: "boolean" }),
    }
}

/// `files` of an issue's metadata (an object, or a string holding one, as beads stores it): the strings
/// of its array, or of a single string. Metadata is the tracker's and other tools': anything else in it,
/// or metadata that is not JSON, declares nothing.
fn metadata_files(metadata: Option<&Value>) -> Vec<String> {
    let parsed;
    let object = match metadata {
        Some(Value::Object(o)) => o,
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => {
                parsed = o;
                &parsed
            }
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    match object.get("files") {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

impl Issue {
    /// An open issue with nothing but its id (also its title) and bd's default priority (2): for the
    /// simulator and tests, which set the fields they are about (`Issue { labels, ..Issue::open(id) }`).
    pub fn open(id: &str) -> Issue {
        Issue {
            id: id.to_string(),
            title: id.to_string(),
            status: "open".into(),
            priority: 2,
            issue_type: None,
            assignee: None,
            labels: vec![],
            dependencies: vec![],
            created_at: None,
            defer_until: None,
            pinned: false,
            ephemeral: false,
            estimated_minutes: None,
            close_reason: None,
            files: vec![],
            text: IssueText::default(),
        }
    }

    /// Whether a JSON object is an issue record: no `_type`, or `_type: "issue"`. Other records
    /// (`"memory"`, …) are kept by the JSONL store but are not issues.
    pub fn is_issue_record(value: &Value) -> bool {
        match value.get("_type") {
            None | Some(Value::Null) => true,
            Some(Value::String(t)) => t == "issue",
            Some(_) => false,
        }
    }

    /// Reads the fields bdp needs from one beads issue object. `id`, `title` and `status` are required;
    /// everything else is optional and unknown fields are ignored.
    pub fn from_json(value: &Value) -> Result<Issue, IssueShapeError> {
        let obj = value.as_object().ok_or(IssueShapeError::NotAnObject)?;
        let id = opt_str(obj, "id")?.ok_or(IssueShapeError::Missing("id"))?;
        let title = opt_str(obj, "title")?.unwrap_or_default();
        let status = opt_str(obj, "status")?.ok_or(IssueShapeError::Missing("status"))?;
        let priority = match obj.get("priority") {
            None | Some(Value::Null) => 2,
            Some(Value::Number(n)) => {
                n.as_i64().ok_or(IssueShapeError::WrongType { field: "priority", expected: "integer" })?
            }
            Some(_) => return Err(IssueShapeError::WrongType { field: "priority", expected: "integer" }),
        };
        let labels = match obj.get("labels") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|l| {
                    l.as_str()
                        .map(str::to_string)
                        .ok_or(IssueShapeError::WrongType { field: "labels", expected: "array of strings" })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(IssueShapeError::WrongType { field: "labels", expected: "array of strings" }),
        };
        let mut dependencies = Vec::new();
        match obj.get("dependencies") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for dep in items {
                    let wrong = IssueShapeError::WrongType { field: "dependencies", expected: "array of objects" };
                    let d = dep.as_object().ok_or(wrong.clone())?;
                    // bd writes `depends_on_id`; `bd show` writes dependencies as full issues with `id`
                    // and `dependency_type`.
                    let target = opt_str(d, "depends_on_id")?.or(opt_str(d, "id")?);
                    let dep_type = opt_str(d, "type")?.or(opt_str(d, "dependency_type")?);
                    let (Some(depends_on_id), Some(dep_type)) = (target, dep_type) else { return Err(wrong) };
                    let metadata = match d.get("metadata") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(other) => Some(other.to_string()),
                    };
                    dependencies.push(Dependency { depends_on_id, dep_type, metadata });
                }
            }
            Some(_) => return Err(IssueShapeError::WrongType { field: "dependencies", expected: "array of objects" }),
        }
        // Some exports carry `parent` without a parent-child edge; make it one edge.
        if let Some(parent) = opt_str(obj, "parent")?
            && !dependencies.iter().any(|d| d.is_parent_child() && d.depends_on_id == parent)
        {
            dependencies.push(Dependency { depends_on_id: parent, dep_type: "parent-child".into(), metadata: None });
        }
        let estimated_minutes = match obj.get("estimated_minutes") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.ceil() as u64)),
            Some(_) => return Err(IssueShapeError::WrongType { field: "estimated_minutes", expected: "number" }),
        };
        Ok(Issue {
            id,
            title,
            status,
            priority,
            issue_type: opt_str(obj, "issue_type")?,
            assignee: opt_str(obj, "assignee")?.filter(|a| !a.is_empty()),
            labels,
            dependencies,
            created_at: opt_str(obj, "created_at")?,
            defer_until: opt_str(obj, "defer_until")?,
            pinned: opt_bool(obj, "pinned")?,
            ephemeral: opt_bool(obj, "ephemeral")?,
            estimated_minutes,
            close_reason: opt_str(obj, "close_reason")?,
            files: metadata_files(obj.get("metadata")),
            text: IssueText {
                description: opt_str(obj, "description")?,
                design: opt_str(obj, "design")?,
                acceptance_criteria: opt_str(obj, "acceptance_criteria")?,
                notes: opt_str(obj, "notes")?,
            },
        })
    }

    /// The parent, from the first `parent-child` edge.
    pub fn parent(&self) -> Option<&str> {
        self.dependencies.iter().find(|d| d.is_parent_child()).map(|d| d.depends_on_id.as_str())
    }

    /// Active in bd's sense: neither closed nor pinned. Only active issues block.
    pub fn is_active(&self) -> bool {
        self.status != "closed" && self.status != "pinned"
    }

    pub fn has_known_status(&self) -> bool {
        KNOWN_STATUSES.contains(&self.status.as_str())
    }

    pub fn is_excluded_type(&self) -> bool {
        self.issue_type.as_deref().is_some_and(|t| EXCLUDED_TYPES.contains(&t))
    }
}

/// Label bdp puts on an issue it gives back after its retries ran out (it waits for a person).
pub const FAILED_LABEL: &str = "bdp:failed";
/// Label bdp puts on an issue whose branch could not be merged (it waits for a person).
pub const CONFLICT_LABEL: &str = "bdp:conflict";

/// Labels to add and to remove in one write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl LabelChange {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// The change made to a list of labels (as bdp keeps it beside the tracker): removed, then added once.
    pub fn apply(&self, labels: &mut Vec<String>) {
        labels.retain(|l| !self.remove.contains(l));
        for label in &self.add {
            if !labels.contains(label) {
                labels.push(label.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_real_line_and_ignores_unknown_fields() {
        let v = json!({"id": "bd-8mg", "title": "T", "status": "closed", "priority": 2, "issue_type": "task",
            "labels": ["backup"], "dependencies": [{"issue_id": "bd-8mg", "depends_on_id": "bd-x", "type": "blocks",
            "metadata": "{}"}], "whatever": {"nested": true}});
        let issue = Issue::from_json(&v).unwrap();
        assert_eq!(issue.id, "bd-8mg");
        assert_eq!(issue.labels, vec!["backup"]);
        assert!(issue.dependencies[0].is_blocking());
        assert!(!issue.is_active());
    }

    #[test]
    fn parent_field_becomes_an_edge_once() {
        let v = json!({"id": "a.1", "title": "", "status": "open", "parent": "a",
            "dependencies": [{"depends_on_id": "a", "type": "parent-child"}]});
        let issue = Issue::from_json(&v).unwrap();
        assert_eq!(issue.dependencies.len(), 1);
        let v = json!({"id": "a.1", "title": "", "status": "open", "parent": "a"});
        assert_eq!(Issue::from_json(&v).unwrap().parent(), Some("a"));
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert_eq!(Issue::from_json(&json!({"title": "x", "status": "open"})), Err(IssueShapeError::Missing("id")));
        let err = Issue::from_json(&json!({"id": "a", "status": "open", "priority": "high"})).unwrap_err();
        assert!(err.to_string().contains("priority"));
        assert_eq!(Issue::from_json(&json!([1])), Err(IssueShapeError::NotAnObject));
    }

    #[test]
    fn waits_for_gate_defaults_to_all_children() {
        let mut d = Dependency { depends_on_id: "x".into(), dep_type: "waits-for".into(), metadata: None };
        assert!(!d.waits_for_any_child());
        d.metadata = Some(r#"{"gate":"any-children"}"#.into());
        assert!(d.waits_for_any_child());
        d.metadata = Some("not json".into());
        assert!(!d.waits_for_any_child());
    }
}
