//! What a release is: the values codebuilder gives the chart, and reads back from
//! `helm get values` to make the next release (a config change keeps the build's process
//! types and port) or to go back to one (a rollback's image, config and release command).
//! The one shape of a release's values: no crate reads them by key.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ImageUser;

/// A release's values, as the default chart reads them (`values.yaml`); an app's own chart
/// gets the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseValues {
    /// The image, set on helm's command line (`image.repository`, `image.tag`) so that no
    /// values file can name another: read back, never written in a file.
    #[serde(default, skip_serializing)]
    pub image: Image,
    /// The build's process types (a buildpack app's, from its Procfile) and their scale.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub processes: BTreeMap<String, Process>,
    /// The port the app listens on (a Dockerfile's EXPOSE).
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
    /// The web process's scale.
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    pub replicas: Option<u32>,
    /// The app's config vars: the chart renders them as the Secret `config_secret`.
    #[serde(
        default,
        deserialize_with = "strings",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_vars: Option<BTreeMap<String, String>>,
    /// The Secret the config vars reach the processes through; absent in a release made
    /// before config vars were part of releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_secret: Option<String>,
    /// The release phase (the Procfile's `release:`), run once before each rollout of this
    /// release, by a config change or a rollback too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<String>,
    /// The image's non-root uid, which the default chart runs its pods as.
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    pub run_as_user: Option<u64>,
}

/// The image a release runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    #[serde(default)]
    pub repository: String,
    /// `git-SHORT`.
    #[serde(default)]
    pub tag: String,
}

/// One process type of a release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    pub replicas: Option<u32>,
}

/// The prefix of the tags codebuilder gives the images it builds: `git-SHORT`.
const TAG_PREFIX: &str = "git-";

impl ReleaseValues {
    /// The values of a release of the image built from commit `short`.
    pub fn of_build(short: &str) -> Self {
        Self {
            image: Image {
                repository: String::new(),
                tag: format!("{TAG_PREFIX}{short}"),
            },
            ..Self::default()
        }
    }

    /// The next release of the same build: its image, process types, port and release
    /// command, with `config` (and the scale [`ReleaseValues::scaled`] gives it).
    pub fn again(&self, config: BTreeMap<String, String>) -> Self {
        Self {
            replicas: None,
            config_vars: Some(config),
            config_secret: None,
            run_as_user: None,
            ..self.clone()
        }
    }

    /// The scale `counts` (pods per process type) of the process types `types`: `replicas`
    /// for web, `processes.TYPE.replicas` for the others. Types not in `types` are left out,
    /// so that a scale never makes a process without a command.
    pub fn scaled<'k>(
        mut self,
        counts: impl IntoIterator<Item = (&'k str, u32)>,
        types: &[&str],
    ) -> Self {
        for (kind, count) in counts {
            if !types.contains(&kind) {
                continue;
            }
            if kind == "web" {
                self.replicas = Some(count);
            } else {
                self.processes.entry(kind.to_owned()).or_default().replicas = Some(count);
            }
        }
        self
    }

    /// The process types a scale may set: web, and the release's own.
    pub fn types(&self) -> Vec<&str> {
        let mut types = vec!["web"];
        types.extend(self.processes.keys().map(String::as_str));
        types
    }

    /// The commit codebuilder built the image from (`git-SHORT`'s `SHORT`), if it built it.
    pub fn short(&self) -> Option<&str> {
        self.image
            .tag
            .strip_prefix(TAG_PREFIX)
            .filter(|short| !short.is_empty())
    }

    /// The config vars the release holds; `None` for a release made before config vars were
    /// part of releases.
    pub fn config(&self) -> Option<BTreeMap<String, String>> {
        self.config_secret.as_ref()?;
        Some(self.config_vars.clone().unwrap_or_default())
    }

    /// Who the release's image runs as; root for a release that kept no uid.
    pub fn image_user(&self) -> ImageUser {
        self.run_as_user
            .and_then(|uid| u32::try_from(uid).ok())
            .filter(|uid| *uid > 0)
            .map_or(ImageUser::Root, ImageUser::NonRoot)
    }
}

/// A number as helm keeps it: as given, so an operator's values may have it quoted.
fn number<'de, D: Deserializer<'de>, N: std::str::FromStr + TryFrom<u64>>(
    deserializer: D,
) -> Result<Option<N>, D::Error> {
    use serde::de::Error;
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    let number = match &value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| N::try_from(n).ok()),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    number.map(Some).ok_or_else(|| {
        D::Error::custom(format!(
            "not a number in range: {}",
            value.unwrap_or_default()
        ))
    })
}

/// Config vars as strings: helm keeps a value as given, and one set by hand may be a number.
fn strings<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let vars: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(deserializer)?;
    Ok(vars.map(|vars| {
        vars.into_iter()
            .map(|(key, value)| {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                (key, value)
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_back_from_helm_give_the_next_release() {
        let read: ReleaseValues = serde_json::from_value(json!({
            "image": {"repository": "127.0.0.1:5555/shop", "tag": "git-3f2c9e1"},
            "processes": {"worker": {"command": "work", "replicas": 2, "resources": {}}},
            "port": "8080",
            "replicas": 3,
            "configVars": {"A": "1", "N": 5},
            "configSecret": "shop-config",
            "releaseCommand": "migrate",
            "runAsUser": 1000,
            "hostNetwork": true,
        }))
        .unwrap();
        assert_eq!(read.short(), Some("3f2c9e1"));
        assert_eq!(read.image_user(), ImageUser::NonRoot(1000));
        assert_eq!(
            read.config().unwrap(),
            BTreeMap::from([("A".into(), "1".into()), ("N".into(), "5".into())])
        );
        let next = read
            .again(BTreeMap::from([("B".into(), "2".into())]))
            .scaled([("web", 1), ("worker", 4), ("gone", 9)], &read.types());
        assert_eq!(
            serde_json::to_value(&next).unwrap(),
            json!({
                "processes": {"worker": {"command": "work", "replicas": 4}},
                "port": 8080,
                "replicas": 1,
                "configVars": {"B": "2"},
                "releaseCommand": "migrate",
            })
        );
        assert_eq!(next.image.tag, "git-3f2c9e1");
    }

    #[test]
    fn an_old_or_foreign_release_says_so() {
        let old: ReleaseValues = serde_json::from_value(json!({"image": {"tag": "v1"}})).unwrap();
        assert_eq!(old.short(), None);
        assert_eq!(old.config(), None);
        assert_eq!(old.image_user(), ImageUser::Root);
        assert_eq!(ReleaseValues::of_build("abc1234").short(), Some("abc1234"));
    }
}
