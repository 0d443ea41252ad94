//! `git push -o OPTION`: what a pusher may ask of one build. git hands the options to the
//! hook as `GIT_PUSH_OPTION_COUNT` and `GIT_PUSH_OPTION_0..N`.

use std::fmt;

/// More options than this in one push is not a request.
const MAX_OPTIONS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOption {
    /// Build without the layer cache.
    NoCache,
    /// Build and push the image, but do not deploy it.
    SkipDeploy,
    /// Show the tools' output that is otherwise folded.
    Verbose,
}

impl PushOption {
    pub const ALL: [PushOption; 3] = [Self::NoCache, Self::SkipDeploy, Self::Verbose];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCache => "no-cache",
            Self::SkipDeploy => "skip-deploy",
            Self::Verbose => "verbose",
        }
    }

    /// `no-cache, skip-deploy, verbose`.
    pub fn known() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// The one validator of a push option.
    pub fn parse(text: &str) -> Result<Self, OptionError> {
        Self::ALL
            .into_iter()
            .find(|option| option.as_str() == text)
            .ok_or_else(|| OptionError::Unknown(codebuilder_core::names::printable(text)))
    }
}

impl fmt::Display for PushOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown push option \"{0}\": the known ones are {known} (git push -o {first})", known = PushOption::known(), first = PushOption::ALL[0])]
    Unknown(String),
    #[error("more than {MAX_OPTIONS} push options: give each option once")]
    TooMany,
    #[error("git passed a broken push option list ({0}): push again")]
    Broken(&'static str),
}

/// The options of one push (none for a rebuild).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOptions {
    pub no_cache: bool,
    pub skip_deploy: bool,
    pub verbose: bool,
}

impl PushOptions {
    /// Reads the options git passes to the hook, refusing any unknown one.
    pub fn from_env() -> Result<Self, OptionError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, OptionError> {
        let Some(count) = var("GIT_PUSH_OPTION_COUNT") else {
            return Ok(Self::default());
        };
        let count: usize = count
            .parse()
            .map_err(|_| OptionError::Broken("GIT_PUSH_OPTION_COUNT"))?;
        if count > MAX_OPTIONS {
            return Err(OptionError::TooMany);
        }
        let mut options = Self::default();
        for index in 0..count {
            let text =
                var(&format!("GIT_PUSH_OPTION_{index}")).ok_or(OptionError::Broken("missing"))?;
            match PushOption::parse(&text)? {
                PushOption::NoCache => options.no_cache = true,
                PushOption::SkipDeploy => options.skip_deploy = true,
                PushOption::Verbose => options.verbose = true,
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(options: &[&str]) -> Result<PushOptions, OptionError> {
        let mut vars: HashMap<String, String> = options
            .iter()
            .enumerate()
            .map(|(i, o)| (format!("GIT_PUSH_OPTION_{i}"), o.to_string()))
            .collect();
        vars.insert("GIT_PUSH_OPTION_COUNT".into(), options.len().to_string());
        PushOptions::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn known_options() {
        assert_eq!(PushOptions::from_vars(|_| None), Ok(PushOptions::default()));
        assert_eq!(parse(&[]), Ok(PushOptions::default()));
        assert_eq!(
            parse(&["no-cache", "verbose", "no-cache"]),
            Ok(PushOptions {
                no_cache: true,
                skip_deploy: false,
                verbose: true
            })
        );
        assert_eq!(parse(&["skip-deploy"]).map(|o| o.skip_deploy), Ok(true));
        for option in PushOption::ALL {
            assert_eq!(PushOption::parse(option.as_str()), Ok(option));
        }
    }

    #[test]
    fn refuses_the_rest() {
        assert_eq!(
            parse(&["verbose", "nocache"]).unwrap_err().to_string(),
            "unknown push option \"nocache\": the known ones are no-cache, skip-deploy, verbose (git push -o no-cache)"
        );
        for bad in ["", "No-Cache", "no-cache ", "verbose=1", "x\ny"] {
            assert!(parse(&[bad]).is_err(), "{bad:?}");
        }
        assert!(!parse(&["x\ny"]).unwrap_err().to_string().contains('\n'));
        assert_eq!(parse(&["verbose"; 17]), Err(OptionError::TooMany));
        assert!(PushOptions::from_vars(
            |name| (name == "GIT_PUSH_OPTION_COUNT").then(|| "1".to_string())
        )
        .is_err());
    }
}
