//! A rendered release (`helm template`'s output) read as helm and the API server will read it,
//! for codebuilder's own checks (Pod Security, the quota) before anything is applied.
//!
//! Read so that nothing can hide from the checks: documents are split as helm splits them;
//! lists are opened as helm opens them; field names match whatever case Kubernetes' JSON
//! decoding would match; YAML merge keys, which helm's YAML reader merges, are refused; a
//! document that does not read is refused rather than skipped.

use codebuilder_core::yaml;
use serde_json::Value;

/// Why a rendered release cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {number} is not YAML ({reason})")]
    NotYaml { number: usize, reason: String },
    #[error("document {number} uses a YAML merge key (<<), which codebuilder does not check")]
    MergeKey { number: usize },
}

/// The objects of a rendered release, in order, with the items of lists in place of the
/// lists.
pub fn read(text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut objects = Vec::new();
    for (index, document) in split(text).into_iter().enumerate() {
        let number = index + 1;
        let value = yaml::document(document).map_err(|e| ManifestError::NotYaml {
            number,
            reason: e.to_string(),
        })?;
        if has_merge_key(&value) {
            return Err(ManifestError::MergeKey { number });
        }
        open_lists(value, &mut objects);
    }
    Ok(objects)
}

/// Splits as helm does (`(?:^|\s*\n)---\s*`): at every `---` that starts the text or a line,
/// whatever follows it on that line; empty documents are dropped.
fn split(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < text.len() {
        let line_start = at == 0 || text.as_bytes()[at - 1] == b'\n';
        if line_start && text[at..].starts_with("---") {
            documents.push(&text[start..at]);
            at += 3;
            at += text[at..].len() - text[at..].trim_start().len();
            start = at;
        } else {
            at += text[at..].chars().next().map_or(1, char::len_utf8);
        }
    }
    documents.push(&text[start..]);
    documents.retain(|d| !d.trim().is_empty());
    documents
}

fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(has_merge_key),
        Value::Object(map) => map.iter().any(|(k, v)| k == "<<" || has_merge_key(v)),
        _ => false,
    }
}

/// An object with an `items` list is a list to helm (kubectl's `Flatten`): its items are
/// created one by one.
fn open_lists(value: Value, objects: &mut Vec<Value>) {
    let items: Vec<Value> = fields(&value, "items")
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .cloned()
        .collect();
    if items.is_empty() {
        objects.push(value);
    } else {
        for item in items {
            open_lists(item, objects);
        }
    }
}

/// A field name as Kubernetes' JSON decoding compares it: without case, with the non-ASCII
/// letters that fold to ASCII ones (the Kelvin sign, the long s, the dotted and dotless i).
fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '\u{212A}' => 'k',
            '\u{017F}' => 's',
            '\u{0130}' | '\u{0131}' => 'i',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Every value of `map` under a key that reads as `name`; none when `map` is not a mapping.
pub fn fields<'a>(map: &'a Value, name: &str) -> Vec<&'a Value> {
    let wanted = fold(name);
    map.as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| fold(key) == wanted)
        .map(|(_, value)| value)
        .collect()
}

/// Every value at `path` (`["spec", "template"]`), following every matching key.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    let mut found = vec![value];
    for name in path {
        found = found.into_iter().flat_map(|v| fields(v, name)).collect();
    }
    found
}

/// The elements of a list field; a single value where a list belongs counts as one.
pub fn elements(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A scalar as text, for messages and comparisons; a list or a mapping where a scalar
/// belongs is written as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Which objects run pods, and where their pod template is (a Pod's is the Pod).
const POD_TEMPLATES: [(&str, &[&str]); 8] = [
    ("pod", &[]),
    ("deployment", &["spec", "template"]),
    ("statefulset", &["spec", "template"]),
    ("daemonset", &["spec", "template"]),
    ("replicaset", &["spec", "template"]),
    ("replicationcontroller", &["spec", "template"]),
    ("job", &["spec", "template"]),
    ("cronjob", &["spec", "jobTemplate", "spec", "template"]),
];

/// One pod template of an object. Where a field is given twice (in two cases), every one
/// of them is looked at: the API server keeps the last, a check must pass them all.
pub struct PodTemplate<'a> {
    /// `kind/name`, as kubectl names objects: `daemonset/t`.
    pub object: String,
    /// The object that holds the template.
    pub holder: &'a Value,
    /// The template's metadata (its annotations).
    pub metadata: Vec<&'a Value>,
    pub spec: &'a Value,
}

/// The kinds `object` says it is, lowercased: `deployment`.
pub fn kinds(object: &Value) -> Vec<String> {
    fields(object, "kind")
        .into_iter()
        .map(|k| fold(&text(k)))
        .collect()
}

/// The objects' pod templates, in order.
pub fn pod_templates(objects: &[Value]) -> Vec<PodTemplate<'_>> {
    let mut templates = Vec::new();
    for object in objects {
        let name = at(object, &["metadata", "name"])
            .first()
            .map(|n| text(n))
            .unwrap_or_default();
        for kind in kinds(object) {
            let Some((_, path)) = POD_TEMPLATES.iter().find(|(k, _)| *k == kind) else {
                continue;
            };
            for template in at(object, path) {
                let (metadata, specs) = match path.len() {
                    // A Pod is its own template.
                    0 => (fields(object, "metadata"), fields(object, "spec")),
                    _ => (fields(template, "metadata"), fields(template, "spec")),
                };
                for spec in specs {
                    templates.push(PodTemplate {
                        object: format!("{kind}/{name}"),
                        holder: object,
                        metadata: metadata.clone(),
                        spec,
                    });
                }
            }
        }
    }
    templates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_as_helm_splits_them() {
        assert_eq!(
            split("a: 1\n---\nb: 2\n--- \n\n---\nc: 3"),
            ["a: 1\n", "b: 2\n", "c: 3"]
        );
        assert_eq!(split("---\na: 1\n"), ["a: 1\n"]);
        assert_eq!(
            split("a: |\n  x\n  ---\n  y\n"),
            ["a: |\n  x\n  ---\n  y\n"]
        );
    }

    #[test]
    fn lists_are_opened_and_names_match_in_any_case() {
        let objects = read(
            "kind: List\nitems:\n  - kind: List\n    items:\n      - KIND: DaemonSet\n        metadata: {name: t}\n        spec: {template: {spec: {hostPID: true}}}\n---\nkind: Service\n",
        )
        .unwrap();
        assert_eq!(objects.len(), 2);
        let pods = pod_templates(&objects);
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].object, "daemonset/t");
        assert_eq!(fields(pods[0].spec, "hostpid"), [&Value::Bool(true)]);
        let folded =
            read("kind: Pod\nspec:\n  \u{212A}ind: x\n  ho\u{017F}tNetwork: true\n").unwrap();
        assert_eq!(
            fields(&folded[0]["spec"], "hostNetwork"),
            [&Value::Bool(true)]
        );
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        assert_eq!(
            read("a: 1\n---\nb: [\n")
                .unwrap_err()
                .to_string()
                .split(" (")
                .next(),
            Some("document 2 is not YAML")
        );
        assert_eq!(
            read("x: &p {privileged: true}\nspec:\n  <<: *p\n")
                .unwrap_err()
                .to_string(),
            "document 1 uses a YAML merge key (<<), which codebuilder does not check"
        );
        assert_eq!(
            read("a: 1\nb: 2\na: 3\n")
                .unwrap_err()
                .to_string()
                .split(" (")
                .next(),
            Some("document 1 is not YAML")
        );
        assert_eq!(
            read("a: 1\nb: 2\na: 3\n").unwrap_err().to_string(),
            "document 1 is not YAML (the key \"a\" twice in one mapping at line 3 column 4)"
        );
        let tagged = read("kind: Pod\nspec: !custom\n  hostIPC: !!bool true\n").unwrap();
        assert_eq!(fields(&tagged[0]["spec"], "hostIPC"), [&Value::Bool(true)]);
    }

    #[test]
    fn comments_anchors_and_quoted_numbers_read_as_helm_reads_them() {
        let objects = read(
            "# Source: app/templates/a.yaml\n---\n# only a comment\n---\nkind: Pod\nmetadata: {name: &n web, labels: {app: *n}}\nspec:\n  containers:\n  - ports: [{hostPort: \"0\", containerPort: 0080}]\n",
        )
        .unwrap();
        // A document of comments reads as null: no object, nothing to check.
        assert_eq!(objects[..2], [Value::Null, Value::Null]);
        assert_eq!(text(&objects[2]["metadata"]["labels"]["app"]), "web");
        let port = &objects[2]["spec"]["containers"][0]["ports"][0];
        assert_eq!(port["hostPort"], Value::String("0".into()));
        assert_eq!(text(&port["containerPort"]), "0080");
    }
}
