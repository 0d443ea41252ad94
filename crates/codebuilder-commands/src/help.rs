//! `help` and `help VERB`, printed from the table.

use std::fmt::Write;

use crate::table::{Verb, VERBS};

/// `help`: every verb people type, with its usage and one line of help.
pub fn overview() -> String {
    let mut text = String::from(
        "Push to deploy: git push ssh://git@HOST/APP BRANCH. Then, as ssh git@HOST COMMAND:\n",
    );
    for verb in VERBS.iter().filter(|v| !v.git) {
        let _ = writeln!(text, "  {}\n      {}", verb.usage(), verb.help);
    }
    text.push_str("'help COMMAND' says who may run it.\n");
    text
}

/// `help VERB`: its usage, what it does, and who may run it.
pub fn about(verb: &Verb) -> String {
    format!(
        "usage: {}\n{}.\nWho may run it: {}.\n",
        verb.usage(),
        verb.help,
        verb.need.holders()
    )
}
