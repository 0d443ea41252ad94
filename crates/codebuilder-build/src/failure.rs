//! The one place a build step's failure becomes the pusher's last line: what failed and what
//! to do. Every step of a build runs with what is left of the build's time limit
//! ([`remaining`]); a step that runs out names the limit as the operator set it
//! (`CODEBUILDER_BUILD_TIMEOUT`), not the time that happened to be left.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use codebuilder_core::settings::ByteSize;
use codebuilder_process::StepError;

/// The setting a build's timeout names.
const TIMEOUT_SETTING: &str = "CODEBUILDER_BUILD_TIMEOUT";

/// Time left before `deadline`, at least a second: the build's time limit covers all steps.
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

/// A build step that failed, as the pusher reads it last.
pub(crate) struct Failure<'a> {
    /// What ran: `docker build`, `fetching buildpack URL`.
    pub what: &'a str,
    /// What to do when it failed by itself.
    pub fix: &'a str,
    /// The build's time limit as the operator set it.
    pub limit: Duration,
}

impl Failure<'_> {
    /// The line for a step fed by `git archive` of the pushed tree: a broken archive
    /// explains the rest.
    pub(crate) fn of_pushed_tree(&self, error: StepError) -> anyhow::Error {
        match error {
            StepError::Failed { program, status } if program == "git" => {
                anyhow!("reading the pushed tree failed ({status})")
            }
            other => self.of_step(other),
        }
    }

    /// The line for any other step.
    pub(crate) fn of_step(&self, error: StepError) -> anyhow::Error {
        let what = self.what;
        match error {
            StepError::Failed { status, .. } => anyhow!("{what} failed ({status}): {}", self.fix),
            StepError::TimedOut(_) => anyhow!(
                "{what} took longer than {} and was stopped: raise {TIMEOUT_SETTING} if it needs longer",
                humantime::Duration::from(self.limit)
            ),
            StepError::Cancelled => anyhow!("{what} was cancelled: the push was interrupted"),
            StepError::TooLarge(limit) => anyhow!("{what} was stopped: the pushed tree is over the {} limit of a build context (CODEBUILDER_MAX_CONTEXT_SIZE): remove large files from the repository, or raise CODEBUILDER_MAX_CONTEXT_SIZE", ByteSize(limit)),
            StepError::Spawn { program, source } => {
                anyhow!("cannot run {program}: {source} (is it installed?)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_names_the_limit_as_set_and_git_explains_the_rest() {
        let failure = Failure {
            what: "docker push",
            fix: "check the registry",
            limit: Duration::from_secs(1800),
        };
        let timed_out = StepError::TimedOut(Duration::from_secs(3).into());
        assert_eq!(
            failure.of_step(timed_out).to_string(),
            "docker push took longer than 30m and was stopped: raise CODEBUILDER_BUILD_TIMEOUT if it needs longer"
        );
        assert_eq!(
            failure.of_step(StepError::Cancelled).to_string(),
            "docker push was cancelled: the push was interrupted"
        );
    }
}
