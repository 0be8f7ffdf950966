//! What a new user meets in the first hour: each command does what its name says, and its
//! output speaks the user's words.

mod json_output;
mod onboarding;
mod refs;
mod run_messages;
mod signals;
mod time_and_output;
mod timestamps;
mod wording;

use crate::common::*;

fn seeded() -> Env {
    let env = Env::new();
    write(&env.path("seed/s.parquet"), &events(0..10, false));
    assert_eq!(env.run("seed").0, 0);
    env
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
