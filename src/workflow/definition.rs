//! Reading and validating Orchestra's workflow layout: `DIR/workflow.json` (workflow and
//! certifications) plus `DIR/<version>/version.json` for each version (behaviour §3).
//!
//! Validation is complete at load time: every function path is resolved to a built-in, every
//! slug reference checked, review policies and SanityBot configuration validated. Nothing that
//! loads can fail later because of its definition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::functions::{
    DescriptionFunction, PORTING_HELP, ReviewPolicy, StepAssignmentPolicies, check_creation_policy,
    parse_assignment_policy, parse_description_function, parse_review_policy, resolve_script,
};
use super::script::{Purpose, SCRIPT_PREFIX, ScriptSource};
use crate::workflow::sanity::SanityConfig;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, LoadError> {
    Err(LoadError(message.into()))
}

#[derive(Debug, Clone, PartialEq)]
pub struct CertificationDef {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub required_certifications: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepDef {
    pub slug: String,
    pub name: String,
    pub description: String,
    /// False for a machine step: completed by automation, never offered to workers.
    pub is_human: bool,
    /// A machine step's Orchestra function path (`execution_function.path`), which
    /// `machine.functions` in the configuration maps to what staffbot does.
    pub execution_function: Option<ExecutionFunction>,
    /// Orchestra's `assignable_hours_function` as stored ([`super::functions::parse_hours_function`];
    /// a Python path as written, meaning "no hours known").
    pub assignable_hours_function: Option<Value>,
    pub creation_depends_on: Vec<String>,
    pub submission_depends_on: Vec<String>,
    pub required_certifications: Vec<String>,
    pub assignment_policy: StepAssignmentPolicies,
    pub review_policy: ReviewPolicy,
    pub detailed_description: Option<DescriptionFunction>,
    pub completion_ends_project: bool,
}

/// A machine step's `execution_function`: the path names it in `machine.functions`; the kwargs
/// are passed to the command (as Orchestra passes them to the Python function).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionFunction {
    pub path: String,
    #[serde(default)]
    pub kwargs: serde_json::Map<String, Value>,
    /// For a `script:<file>.rhai` path: the script, its source as loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VersionDef {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub steps: Vec<StepDef>,
    pub sanity_checks: Option<SanityConfig>,
    /// The `sanity_checks` object as written (stored next to the parsed form).
    pub raw_sanity_checks: Value,
    /// The whole `version.json` as written.
    pub raw: Value,
    /// The source of every `script:` file the version uses, by file name.
    pub scripts: BTreeMap<String, String>,
}

/// A `version.json` as read: its directory, its JSON and the scripts it names (file name to
/// source; the files are read by [`read`], so that [`parse`] reads nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionFile {
    pub dir: PathBuf,
    pub json: Value,
    pub scripts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub certifications: Vec<CertificationDef>,
    pub versions: Vec<VersionDef>,
    /// Keys that were ignored (Orchestra UI settings and the like), for the user to see.
    pub notes: Vec<String>,
}

fn read_json(path: &Path) -> Result<Value, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| LoadError(format!("invalid JSON in {}: {e}", path.display())))
}

fn string_field(obj: &Value, key: &str, what: &str) -> Result<String, LoadError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => err(format!("{what} needs \"{key}\" (a non-empty string)")),
    }
}

fn optional_string(obj: &Value, key: &str) -> String {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn slug_list(obj: &Value, key: &str, what: &str) -> Result<Vec<String>, LoadError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| LoadError(format!("{what}.{key} must be a list of slugs"))),
        Some(_) => err(format!("{what}.{key} must be a list of slugs")),
    }
}

/// Loads a workflow from a directory (all versions) or from a file: a `workflow.json` (all
/// versions in its directory) or one `version.json` (just that version).
pub fn read(path: &Path) -> Result<WorkflowDef, LoadError> {
    if !path.exists() {
        return err("Workflow directory does not exist.");
    }
    let (dir, only_version): (PathBuf, Option<PathBuf>) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else if path.file_name().is_some_and(|n| n == "version.json") {
        let version_dir = path.parent().unwrap_or(Path::new("."));
        (
            version_dir.parent().unwrap_or(Path::new(".")).to_path_buf(),
            Some(version_dir.to_path_buf()),
        )
    } else {
        (path.parent().unwrap_or(Path::new(".")).to_path_buf(), None)
    };
    let manifest = dir.join("workflow.json");
    if !manifest.is_file() {
        return err("No \"workflow.json\" manifest file found.");
    }
    let version_dirs = match only_version {
        Some(v) => vec![v],
        None => {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| LoadError(format!("cannot read {}: {e}", dir.display())))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.join("version.json").is_file())
                .collect();
            dirs.sort();
            dirs
        }
    };
    if version_dirs.is_empty() {
        return err(format!(
            "Workflow directory {} does not contain any versions",
            dir.display()
        ));
    }
    let workflow = read_json(&manifest)?;
    let versions = version_dirs
        .iter()
        .map(|d| {
            let json = read_json(&d.join("version.json"))?;
            let scripts = read_scripts(d, &json)?;
            Ok(VersionFile {
                dir: d.clone(),
                json,
                scripts,
            })
        })
        .collect::<Result<Vec<_>, LoadError>>()?;
    parse(&workflow, &versions)
}

/// Every `"path": "script:<file>"` in `value`, anywhere.
fn script_paths<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(file) = map
                .get("path")
                .and_then(Value::as_str)
                .and_then(|p| p.strip_prefix(SCRIPT_PREFIX))
            {
                out.push(file);
            }
            map.values().for_each(|v| script_paths(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| script_paths(v, out)),
        _ => {}
    }
}

/// `version.json` of `dir`, with the line and column where `script:<file>` is named in it.
fn named_at(dir: &Path, file: &str) -> String {
    let json = dir.join("version.json");
    let at = std::fs::read_to_string(&json).ok().and_then(|text| {
        text.find(&format!("{SCRIPT_PREFIX}{file}"))
            .map(|i| super::template::line_column(&text, i))
    });
    match at {
        Some((line, column)) => format!("{}, line {line}, column {column}", json.display()),
        None => json.display().to_string(),
    }
}

/// Reads the scripts a version names, relative to its directory (never outside it: no `..`,
/// no absolute path, and no link that leads out of it).
fn read_scripts(dir: &Path, version: &Value) -> Result<BTreeMap<String, String>, LoadError> {
    let mut files = Vec::new();
    script_paths(version, &mut files);
    let mut scripts = BTreeMap::new();
    for file in files {
        if scripts.contains_key(file) {
            continue;
        }
        let relative = Path::new(file);
        if file.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return err(format!(
                "{}: script path {file:?} must name a file in the version's directory (relative, without ..)",
                named_at(dir, file)
            ));
        }
        if relative.extension().is_none_or(|e| e != "rhai") {
            return err(format!(
                "{}: script path {file:?} must name a Rhai script (a .rhai file)",
                named_at(dir, file)
            ));
        }
        let path = dir.join(relative);
        let cannot_read =
            |e: std::io::Error| LoadError(format!("cannot read script {}: {e}", path.display()));
        // The real path, links resolved, must still be inside the real version directory.
        let real_dir = dir.canonicalize().map_err(cannot_read)?;
        let real = path.canonicalize().map_err(cannot_read)?;
        if !real.starts_with(&real_dir) || !real.is_file() {
            return err(format!(
                "{}: script {file:?} leads outside the version's directory (to {}); a script must be a file inside it, not a link out of it",
                named_at(dir, file),
                real.display()
            ));
        }
        let source = std::fs::read_to_string(&real).map_err(cannot_read)?;
        scripts.insert(file.to_string(), source);
    }
    Ok(scripts)
}

/// `workflow.json`'s certifications: each defined once, requiring only defined ones.
fn parse_certifications(workflow: &Value) -> Result<Vec<CertificationDef>, LoadError> {
    let mut certifications = Vec::new();
    let cert_values = match workflow.get("certifications") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return err("workflow.json: certifications must be a list"),
    };
    for c in &cert_values {
        let cslug = string_field(c, "slug", "a certification")?;
        if certifications
            .iter()
            .any(|x: &CertificationDef| x.slug == cslug)
        {
            return err(format!("Certification {cslug} is defined twice."));
        }
        certifications.push(CertificationDef {
            name: string_field(c, "name", &format!("certification {cslug}"))?,
            description: optional_string(c, "description"),
            required_certifications: slug_list(c, "required_certifications", &cslug)?,
            slug: cslug,
        });
    }
    let cert_slugs: HashSet<&str> = certifications.iter().map(|c| c.slug.as_str()).collect();
    for c in &certifications {
        if c.required_certifications
            .iter()
            .any(|r| !cert_slugs.contains(r.as_str()))
        {
            return err(format!(
                "Certification {} requires non-existent certification.",
                c.slug
            ));
        }
    }
    Ok(certifications)
}

/// Validates a parsed `workflow.json` and its versions (each with the directory it came from,
/// for messages, and its scripts).
pub fn parse(workflow: &Value, versions: &[VersionFile]) -> Result<WorkflowDef, LoadError> {
    let slug = string_field(workflow, "slug", "workflow.json")?;
    let name = string_field(workflow, "name", "workflow.json")?;
    let description = optional_string(workflow, "description");
    let mut notes = Vec::new();
    if let Some(obj) = workflow.as_object() {
        for key in obj.keys() {
            match key.as_str() {
                "slug" | "name" | "description" | "certifications" => {}
                "sample_data_load_function" => notes.push(
                    "workflow.json: \"sample_data_load_function\" is ignored (staffbot loads no sample data)"
                        .to_string(),
                ),
                _ => notes.push(format!("workflow.json: unknown key \"{key}\" is ignored")),
            }
        }
    }

    let certifications = parse_certifications(workflow)?;
    let cert_slugs: HashSet<&str> = certifications.iter().map(|c| c.slug.as_str()).collect();

    let mut parsed_versions = Vec::new();
    let mut seen_versions = HashSet::new();
    for file in versions {
        let mut version_notes = Vec::new();
        let v = parse_version(&file.json, &file.scripts, &cert_slugs, &mut version_notes).map_err(
            |e| {
                LoadError(format!(
                    "{}: {}",
                    file.dir.join("version.json").display(),
                    e.0
                ))
            },
        )?;
        notes.extend(
            version_notes
                .into_iter()
                .map(|n| format!("version {}: {n}", v.slug)),
        );
        if !seen_versions.insert(v.slug.clone()) {
            return err(format!("Version {} is defined twice.", v.slug));
        }
        parsed_versions.push(v);
    }
    Ok(WorkflowDef {
        slug,
        name,
        description,
        certifications,
        versions: parsed_versions,
        notes,
    })
}

const IGNORED_STEP_KEYS: &[&str] = &["user_interface", "todolist_templates_to_apply"];
const STEP_KEYS: &[&str] = &[
    "slug",
    "name",
    "description",
    "is_human",
    "creation_depends_on",
    "submission_depends_on",
    "required_certifications",
    "assignment_policy",
    "review_policy",
    "creation_policy",
    "detailed_description_function",
    "completion_ends_project",
    "execution_function",
    "assignable_hours_function",
];

fn parse_version(
    version: &Value,
    scripts: &BTreeMap<String, String>,
    cert_slugs: &HashSet<&str>,
    notes: &mut Vec<String>,
) -> Result<VersionDef, LoadError> {
    let slug = string_field(version, "slug", "version.json")?;
    let name = string_field(version, "name", "version.json")?;
    let description = optional_string(version, "description");
    if version
        .get("abort_completion_function")
        .is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    {
        return err(
            "abort_completion_function is not supported by staffbot; remove it from version.json",
        );
    }
    let step_values = version
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| LoadError("version.json needs \"steps\" (a list)".into()))?;
    let raw_steps = slugged_steps(step_values)?;
    let step_slugs: Vec<&str> = raw_steps.iter().map(|(_, s)| s.as_str()).collect();
    let known = KnownSlugs {
        steps: &step_slugs,
        certifications: cert_slugs,
        scripts,
    };
    let mut steps = Vec::new();
    for (s, sslug) in &raw_steps {
        steps.push(parse_step(s, sslug, known, notes)?);
    }
    check_machine_steps_not_related(&steps)?;
    check_acyclic(&steps)?;

    let raw_sanity_checks = version
        .get("sanity_checks")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let sanity_checks = SanityConfig::parse(&raw_sanity_checks, &step_slugs, scripts)
        .map_err(|e| LoadError(format!("sanity_checks: {e}")))?;

    Ok(VersionDef {
        slug,
        name,
        description,
        steps,
        sanity_checks,
        raw_sanity_checks,
        raw: version.clone(),
        scripts: scripts.clone(),
    })
}

/// Each step with its slug; a slug used twice is an error.
fn slugged_steps(step_values: &[Value]) -> Result<Vec<(&Value, String)>, LoadError> {
    let mut raw_steps: Vec<(&Value, String)> = Vec::new();
    for s in step_values {
        let sslug = string_field(s, "slug", "a step")?;
        if raw_steps.iter().any(|(_, x)| *x == sslug) {
            return err(format!("Step {sslug} is defined twice."));
        }
        raw_steps.push((s, sslug));
    }
    Ok(raw_steps)
}

/// The slugs a step may refer to: the version's steps and the workflow's certifications.
#[derive(Clone, Copy)]
struct KnownSlugs<'a> {
    steps: &'a [&'a str],
    certifications: &'a HashSet<&'a str>,
    /// The version's script sources, by file name.
    scripts: &'a BTreeMap<String, String>,
}

/// One step of `version.json`, checked in Orchestra's order.
fn parse_step(
    s: &Value,
    sslug: &str,
    known: KnownSlugs<'_>,
    notes: &mut Vec<String>,
) -> Result<StepDef, LoadError> {
    let what = format!("step {sslug}");
    note_step_keys(s, sslug, &what, notes);
    let (is_human, execution_function) = parse_execution(s, &what, known.scripts, notes)?;
    let assignable_hours_function = match s.get("assignable_hours_function") {
        None | Some(Value::Null) => None,
        Some(f) if f.as_object().is_some_and(|o| o.is_empty()) => None,
        Some(f) if is_python_path(f) => {
            let path = f.get("path").and_then(Value::as_str).unwrap_or_default();
            notes.push(format!(
                "{what}: assignable_hours_function {path:?} is a Python function: no hours are known for its tasks, so nobody is auto-staffed for this step (use staffbot.hours or a script). {PORTING_HELP}"
            ));
            Some(f.clone())
        }
        Some(f) => Some(
            super::functions::parse_hours_function(f, known.scripts)
                .map_err(|e| LoadError(format!("{what}: assignable_hours_function: {e}")))?,
        ),
    };
    if !is_human {
        check_machine_step(s, &what, notes)?;
    }
    let creation_depends_on = slug_list(s, "creation_depends_on", sslug)?;
    let submission_depends_on = slug_list(s, "submission_depends_on", sslug)?;
    let required_certifications = slug_list(s, "required_certifications", sslug)?;
    for (relation, list) in [
        ("creation_depends_on", &creation_depends_on),
        ("submission_depends_on", &submission_depends_on),
    ] {
        if list.iter().any(|x| !known.steps.contains(&x.as_str())) {
            return err(format!("{sslug}.{relation} contains a non-existent slug."));
        }
    }
    if required_certifications
        .iter()
        .any(|c| !known.certifications.contains(c.as_str()))
    {
        return err(format!(
            "{sslug}.required_certifications contains a non-existent slug."
        ));
    }
    let assignment_policy = parse_step_assignment_policy(s, &what, known.steps)?;
    let review_policy = match s.get("review_policy") {
        _ if !is_human => ReviewPolicy::NoReview,
        None | Some(Value::Null) => ReviewPolicy::default(),
        Some(p) => parse_review_policy(p).map_err(|e| LoadError(format!("{what}: {e}")))?,
    };
    if let Some(p) = s.get("creation_policy") {
        check_creation_policy(p).map_err(|e| LoadError(format!("{what}: {e}")))?;
    }
    let step_description = optional_string(s, "description");
    let detailed_description =
        parse_detailed_description(s, &what, &step_description, known.scripts, notes)?;
    Ok(StepDef {
        slug: sslug.to_string(),
        name: string_field(s, "name", &what)?,
        description: step_description,
        is_human,
        execution_function,
        assignable_hours_function,
        creation_depends_on,
        submission_depends_on,
        required_certifications,
        assignment_policy,
        review_policy,
        detailed_description,
        completion_ends_project: s
            .get("completion_ends_project")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Notes for keys staffbot ignores: Orchestra UI settings and unknown keys.
fn note_step_keys(s: &Value, sslug: &str, what: &str, notes: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        return;
    };
    for key in obj.keys() {
        if IGNORED_STEP_KEYS.contains(&key.as_str()) {
            notes.push(format!(
                "step {sslug}: \"{key}\" is ignored (Orchestra UI setting)"
            ));
        } else if !STEP_KEYS.contains(&key.as_str()) {
            notes.push(format!("{what}: unknown key \"{key}\" is ignored"));
        }
    }
}

/// `is_human` and, for a machine step, its `execution_function` (required there, ignored on a
/// human step).
fn parse_execution(
    s: &Value,
    what: &str,
    scripts: &BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> Result<(bool, Option<ExecutionFunction>), LoadError> {
    let is_human = match s.get("is_human") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return err(format!("{what}: is_human must be true or false")),
    };
    let execution_function = match s.get("execution_function") {
        None | Some(Value::Null) => None,
        Some(f) if f.as_object().is_some_and(|o| o.is_empty()) => None,
        Some(f) => Some(ExecutionFunction {
            path: match f.get("path") {
                Some(Value::String(p)) if !p.is_empty() => p.clone(),
                _ => {
                    return err(format!(
                        "{what}: execution_function needs \"path\" (a string)"
                    ));
                }
            },
            kwargs: match f.get("kwargs") {
                None | Some(Value::Null) => Default::default(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => {
                    return err(format!(
                        "{what}: execution_function.kwargs must be an object"
                    ));
                }
            },
            script: None,
        }),
    };
    let execution_function = match (is_human, execution_function) {
        (false, None) => {
            return err(format!(
                "{what}: a machine step (is_human: false) needs \"execution_function\" with a \"path\""
            ));
        }
        (true, Some(_)) => {
            notes.push(format!(
                "{what}: \"execution_function\" is ignored on a human step"
            ));
            None
        }
        (_, Some(mut f)) if f.path.starts_with(SCRIPT_PREFIX) => {
            f.script = Some(
                resolve_script(&f.path, scripts, Purpose::Machine)
                    .map_err(|e| LoadError(format!("{what}: execution_function: {e}")))?,
            );
            Some(f)
        }
        (_, f) => f,
    };
    Ok((is_human, execution_function))
}

/// A machine step has no assignment policy; its review policy and certifications are ignored.
fn check_machine_step(s: &Value, what: &str, notes: &mut Vec<String>) -> Result<(), LoadError> {
    let has_policy = |key: &str| {
        s.get(key)
            .is_some_and(|p| !p.is_null() && !p.as_object().is_some_and(|o| o.is_empty()))
    };
    if has_policy("assignment_policy") {
        return err(format!(
            "{what}: Machine step should not have assignment policy."
        ));
    }
    if has_policy("review_policy")
        || s.get("required_certifications")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    {
        notes.push(format!(
            "{what}: review_policy and required_certifications are ignored on a machine step (nobody is assigned to it)"
        ));
    }
    Ok(())
}

/// The step's `assignment_policy` (`policy_function.entry_level` / `.reviewer`); the steps
/// a `previously_completed_steps` policy names must be in this version.
fn parse_step_assignment_policy(
    s: &Value,
    what: &str,
    step_slugs: &[&str],
) -> Result<StepAssignmentPolicies, LoadError> {
    let assignment_policy = match s.get("assignment_policy") {
        None | Some(Value::Null) => StepAssignmentPolicies::default(),
        Some(p) if p.as_object().is_some_and(|o| o.is_empty()) => StepAssignmentPolicies::default(),
        Some(p) => {
            let functions = p.get("policy_function").ok_or_else(|| {
                LoadError(format!(
                    "{what}: Assignment policy incorrectly specified. (needs \"policy_function\")"
                ))
            })?;
            let mut policies = StepAssignmentPolicies::default();
            for (key, slot) in [
                ("entry_level", &mut policies.entry_level),
                ("reviewer", &mut policies.reviewer),
            ] {
                if let Some(spec) = functions.get(key) {
                    *slot = parse_assignment_policy(spec)
                        .map_err(|e| LoadError(format!("{what}: {key} policy: {e}")))?;
                }
            }
            policies
        }
    };
    for policy in [&assignment_policy.entry_level, &assignment_policy.reviewer] {
        if let super::functions::AssignmentPolicy::PreviouslyCompletedSteps { related_steps } =
            policy
            && let Some(bad) = related_steps
                .iter()
                .find(|r| !step_slugs.contains(&r.as_str()))
        {
            return err(format!(
                "{what}: previously_completed_steps names step {bad}, which is not in this version"
            ));
        }
    }
    Ok(assignment_policy)
}

/// The step's `detailed_description_function`; a Python one falls back to the description.
fn parse_detailed_description(
    s: &Value,
    what: &str,
    step_description: &str,
    scripts: &BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> Result<Option<DescriptionFunction>, LoadError> {
    Ok(match s.get("detailed_description_function") {
        None => None,
        Some(f) if is_python_path(f) => {
            let path = f.get("path").and_then(Value::as_str).unwrap_or_default();
            notes.push(format!(
                "{what}: detailed_description_function {path:?} is a Python function; offers show the step's description instead. {PORTING_HELP}"
            ));
            description_fallback(step_description)
        }
        Some(f) => parse_description_function(f, scripts)
            .map_err(|e| LoadError(format!("{what}: detailed_description_function: {e}")))?,
    })
}

/// A `previously_completed_steps` policy may not name a machine step (nobody worked on it).
fn check_machine_steps_not_related(steps: &[StepDef]) -> Result<(), LoadError> {
    for st in steps {
        for policy in [
            &st.assignment_policy.entry_level,
            &st.assignment_policy.reviewer,
        ] {
            if let super::functions::AssignmentPolicy::PreviouslyCompletedSteps { related_steps } =
                policy
                && related_steps
                    .iter()
                    .any(|r| steps.iter().any(|o| o.slug == *r && !o.is_human))
            {
                return err(format!(
                    "step {}: Machine step should not be member of assignment policy",
                    st.slug
                ));
            }
        }
    }
    Ok(())
}

/// True for a `{path}` that names a function outside staffbot (Orchestra's Python paths):
/// such a detailed description cannot run here. `staffbot.*` paths and short names are
/// staffbot's own and are validated as usual.
fn is_python_path(spec: &Value) -> bool {
    spec.get("path").and_then(Value::as_str).is_some_and(|p| {
        p.contains('.') && !p.starts_with("staffbot.") && !p.starts_with(SCRIPT_PREFIX)
    })
}

/// The step's description as a detailed description (nothing when it is empty or contains
/// template markers).
fn description_fallback(description: &str) -> Option<DescriptionFunction> {
    if description.is_empty()
        || ["{{", "}}", "{%", "%}", "{#", "#}"]
            .iter()
            .any(|m| description.contains(m))
    {
        return None;
    }
    let function = DescriptionFunction {
        template: description.to_string(),
        script: None,
        kwargs: Default::default(),
    };
    function.template().ok().map(|_| function)
}

/// A cycle in `creation_depends_on` means those tasks could never be created.
fn check_acyclic(steps: &[StepDef]) -> Result<(), LoadError> {
    let deps: HashMap<&str, &Vec<String>> = steps
        .iter()
        .map(|s| (s.slug.as_str(), &s.creation_depends_on))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state: HashMap<&str, u8> = HashMap::new();
    fn visit<'a>(
        slug: &'a str,
        deps: &HashMap<&'a str, &'a Vec<String>>,
        state: &mut HashMap<&'a str, u8>,
    ) -> Result<(), LoadError> {
        match state.get(slug) {
            Some(2) => return Ok(()),
            Some(1) => {
                return err(format!(
                    "{slug}.creation_depends_on forms a cycle; its task could never be created."
                ));
            }
            _ => {}
        }
        state.insert(slug, 1);
        if let Some(list) = deps.get(slug) {
            for d in list.iter() {
                visit(d.as_str(), deps, state)?;
            }
        }
        state.insert(slug, 2);
        Ok(())
    }
    for s in steps {
        visit(s.slug.as_str(), &deps, &mut state)?;
    }
    Ok(())
}
