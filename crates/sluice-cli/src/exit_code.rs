//! The process's exit codes, as `sluice --help` lists them: 0 published or nothing to do,
//! 3 audit failed (rolled back), 1 other failure, 2 usage error; after Ctrl-C or SIGTERM,
//! 128 plus the signal's number, as shells report a process those signals ended.

use sluice_wap::RunStatus;

/// Published, nothing to do, or a command that did what it was asked.
pub const SUCCESS: u8 = 0;
/// Any failure without a code of its own.
pub const FAILURE: u8 = 1;
/// A command line clap rejects.
pub const USAGE: u8 = 2;
/// An audit failed: nothing was published.
pub const AUDIT_FAILED: u8 = 3;
/// A run stopped on request before publishing, as after SIGINT.
pub const INTERRUPTED: u8 = 128 + 2;

/// The exit code of one run that ended with `status`.
pub fn of_run(status: RunStatus) -> u8 {
    match status {
        RunStatus::Published | RunStatus::NothingToDo => SUCCESS,
        RunStatus::AuditFailed => AUDIT_FAILED,
        RunStatus::Failed => FAILURE,
        RunStatus::Interrupted => INTERRUPTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_status_has_the_code_the_help_text_promises() {
        assert_eq!(of_run(RunStatus::Published), 0);
        assert_eq!(of_run(RunStatus::NothingToDo), 0);
        assert_eq!(of_run(RunStatus::AuditFailed), 3);
        assert_eq!(of_run(RunStatus::Failed), 1);
        assert_eq!(of_run(RunStatus::Interrupted), 130);
    }
}
