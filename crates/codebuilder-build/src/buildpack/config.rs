//! The app's config vars, as Heroku hands them to `bin/compile`: an ENV_DIR with one file per
//! variable, made from the app's config store (`config:set`); `BUILDPACK_URL` among them picks
//! the app's buildpack, as on Heroku.

use std::collections::BTreeMap;

use codebuilder_apps::{ConfigKey, ConfigStore};
use codebuilder_core::{AppName, Home};

#[derive(Debug, Default)]
pub struct ConfigVars {
    vars: BTreeMap<String, Vec<u8>>,
}

impl ConfigVars {
    /// The app's stored config vars.
    pub fn load(home: &Home, app: &AppName) -> anyhow::Result<Self> {
        let stored = ConfigStore::new(home).load(app)?;
        let vars = stored
            .vars
            .into_iter()
            .map(|(key, value)| (String::from(key), value.into_bytes()))
            .collect();
        Ok(Self { vars })
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.vars.get(name).map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// What may be a config var's (and so an environment variable's) name.
pub fn is_var_name(name: &str) -> bool {
    ConfigKey::parse(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names() {
        for good in ["PATH", "_X", "a1_B"] {
            assert!(is_var_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "Ä"] {
            assert!(!is_var_name(bad), "{bad}");
        }
    }
}
